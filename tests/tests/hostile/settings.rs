//! The generator's settings, from the environment (`scripts/pj test hostile` turns its
//! arguments into these).

use crate::cases::Family;

pub(crate) struct Settings {
    pub(crate) cases: usize,
    pub(crate) seed: u64,
    /// Only this case.
    pub(crate) case: Option<usize>,
    pub(crate) families: Vec<Family>,
    /// Peak resident memory allowed, in MiB (`None`: [`default_rss_mib`]).
    pub(crate) rss_mib: Option<u64>,
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
            rss_mib: match var("HOSTILE_RSS_MIB", 0)? {
                0 => None,
                m => Some(m),
            },
        })
    }
}

impl Settings {
    /// The memory bound, in MiB: the one set, or [`default_rss_mib`].
    pub(crate) fn rss_bound(&self, broker_max_message: usize) -> u64 {
        self.rss_mib
            .unwrap_or_else(|| default_rss_mib(broker_max_message))
    }
}

/// The memory bound unless one is set: 384 MiB for the services, the generator and their
/// runtime, plus four times the broker's `max_message_size` — a body that large is held by
/// the generator, by lapin on each side and by the kit once (a broker configured as
/// rabbitmq-configs/ has 8 MiB: 416 MiB; RabbitMQ's default 128 MiB: 896 MiB).
pub(crate) fn default_rss_mib(broker_max_message: usize) -> u64 {
    384 + 4 * (broker_max_message as u64).div_ceil(1024 * 1024)
}
