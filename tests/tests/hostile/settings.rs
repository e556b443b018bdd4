//! The generator's settings, from the environment (`scripts/pj test hostile` turns its
//! arguments into these).

use crate::cases::Family;

pub(crate) struct Settings {
    pub(crate) cases: usize,
    pub(crate) seed: u64,
    /// Only this case.
    pub(crate) case: Option<usize>,
    pub(crate) families: Vec<Family>,
    /// Peak resident memory allowed, in MiB.
    pub(crate) rss_mib: u64,
}

fn var<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a number")),
        _ => Ok(default),
    }
}

fn families(name: &str) -> Result<Option<Vec<Family>>, String> {
    let Ok(v) = std::env::var(name) else {
        return Ok(None);
    };
    if v.trim().is_empty() {
        return Ok(None);
    }
    v.split(',')
        .map(|f| {
            Family::parse(f.trim()).ok_or_else(|| {
                let known: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
                format!("{name}: no family {f:?} (families: {})", known.join(", "))
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

impl Settings {
    pub(crate) fn from_env() -> Result<Self, String> {
        let mut chosen = families("HOSTILE_ONLY")?.unwrap_or_else(|| Family::ALL.to_vec());
        if let Some(off) = families("HOSTILE_OFF")? {
            chosen.retain(|f| !off.contains(f));
        }
        // Ordinary calls are what the invariants are checked against: always on.
        if !chosen.contains(&Family::Ordinary) {
            chosen.insert(0, Family::Ordinary);
        }
        let case = match std::env::var("HOSTILE_CASE") {
            Ok(v) if !v.trim().is_empty() => Some(
                v.trim()
                    .parse()
                    .map_err(|_| format!("HOSTILE_CASE={v:?} is not a case number"))?,
            ),
            _ => None,
        };
        Ok(Self {
            cases: var("HOSTILE_CASES", 2000)?,
            seed: var("HOSTILE_SEED", 25)?,
            case,
            families: chosen,
            rss_mib: var("HOSTILE_RSS_MIB", 768)?,
        })
    }
}
