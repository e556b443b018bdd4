//! Benchmark (not a test): `manage` on a schema of 200 tables, 600 indexes and 40 views —
//! a no-op `sync`, and `manage diff` between two live databases beside `migra` on the same
//! pair, in one run. Prints a table; migra is installed from PyPI into
//! target/migra-venv when missing. `manage-bench online [ROWS]` measures instead what each
//! online form costs an application writing to a table of ROWS rows (see `online.rs`).
//!
//! ```text
//! cargo build --release -p worker-kit-manage
//! target/release/manage-bench
//! target/release/manage-bench online 1000000
//! ```

#[path = "manage-bench/online.rs"]
mod online;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const TABLES: usize = 200;
const VIEWS: usize = 40;
const RUNS: usize = 5;

fn schema() -> Vec<(String, String)> {
    let mut files = Vec::new();
    for chunk in 0..10 {
        let mut sql = String::new();
        for t in (chunk * TABLES / 10)..((chunk + 1) * TABLES / 10) {
            sql.push_str(&format!(
                "CREATE TABLE t{t} (\n  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n  name text NOT NULL,\n  amount numeric(12,2) NOT NULL DEFAULT 0 CHECK (amount >= 0),\n  created_at timestamptz NOT NULL DEFAULT now(),\n  ref_id bigint,\n  note varchar(200)\n);\n\
                 CREATE INDEX t{t}_name ON t{t} (name);\nCREATE INDEX t{t}_created ON t{t} (created_at) WHERE amount > 0;\nCREATE INDEX t{t}_lower ON t{t} (lower(name));\n\n"
            ));
        }
        files.push((format!("{chunk:02}_tables.sql"), sql));
    }
    let mut views = String::new();
    for v in 0..VIEWS {
        let (a, b) = (v * 2, v * 2 + 1);
        views.push_str(&format!(
            "CREATE VIEW v{v} AS SELECT a.id, a.name, b.amount FROM t{a} a JOIN t{b} b ON b.ref_id = a.id WHERE b.amount > 10;\n"
        ));
    }
    files.push(("50_views.sql".into(), views));
    files
}

fn psql(db: &str, sql: &str) {
    let ok = Command::new("psql")
        .args([
            "-w",
            "-X",
            "-q",
            "-h",
            &host(),
            "-U",
            &user(),
            "-d",
            db,
            "-c",
            sql,
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "psql -d {db} -c {sql:?} failed");
}

fn host() -> String {
    std::env::var("PGHOST").unwrap_or_else(|_| "127.0.0.1".into())
}

fn user() -> String {
    std::env::var("PGUSER").unwrap_or_else(|_| "postgres".into())
}

fn url(db: &str) -> String {
    format!("postgres://{}@{}:5432/{db}", user(), host())
}

fn time<F: FnMut()>(mut f: F) -> Duration {
    let mut runs: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    runs.sort();
    runs[RUNS / 2]
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.code().is_some_and(|c| c == 0 || c == 2),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn migra(root: &Path) -> PathBuf {
    let venv = root.join("target").join("migra-venv");
    let bin = venv.join("bin").join("migra");
    if !bin.exists() {
        eprintln!("installing migra into {}", venv.display());
        assert!(
            Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .unwrap()
                .success()
        );
        assert!(
            Command::new(venv.join("bin").join("pip"))
                .args(["install", "-q", "migra", "psycopg2-binary"])
                .status()
                .unwrap()
                .success()
        );
    }
    bin
}

/// The shadow `sync` keeps for `db`.
fn shadow(db: &str) -> String {
    worker_kit_manage::Shadow::name_for(db, "models")
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let manage = std::env::current_exe().unwrap().with_file_name("manage");
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("online") {
        let rows = args
            .get(1)
            .map_or(1_000_000, |r| r.parse().expect("ROWS is a number of rows"));
        online::run(&manage, rows);
        return;
    }
    let migra = migra(&root);
    let work = std::env::temp_dir().join(format!("manage-bench-{}", std::process::id()));
    let models = work.join("models").join("bench");
    std::fs::create_dir_all(&models).unwrap();
    for (name, sql) in schema() {
        std::fs::write(models.join(name), sql).unwrap();
    }
    let (a, b) = ("manage_bench_a", "manage_bench_b");
    for db in [a, b] {
        for name in [db.to_owned(), shadow(db)] {
            psql(
                "postgres",
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
    let sync = |db: &str| {
        let mut c = Command::new(&manage);
        c.args(["sync", "--noprompt", "--unsafe", "--database-url", &url(db)])
            .current_dir(&work);
        c
    };
    run(&mut sync(a));
    run(&mut sync(b));
    // B drifts from A: ten tables gain a column, five indexes change, two views change.
    for t in 0..10 {
        psql(b, &format!("ALTER TABLE t{t} ADD COLUMN extra int"));
    }
    for t in 10..15 {
        psql(
            b,
            &format!("DROP INDEX t{t}_name; CREATE INDEX t{t}_name ON t{t} (name, id)"),
        );
    }
    psql(
        b,
        "CREATE OR REPLACE VIEW v0 AS SELECT a.id, a.name, b.amount, b.note FROM t0 a JOIN t1 b ON b.ref_id = a.id",
    );

    // A no-op sync reuses the shadow kept from the last run; after a model change (here:
    // the shadow dropped) it reloads the schema first.
    let noop_sync = time(|| {
        let out = run(&mut sync(a));
        assert!(String::from_utf8_lossy(&out.stdout).contains("Already in sync"));
    });
    let reload_sync = time(|| {
        psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", shadow(a)),
        );
        let out = run(&mut sync(a));
        assert!(String::from_utf8_lossy(&out.stdout).contains("Already in sync"));
    });
    let manage_diff = time(|| {
        run(Command::new(&manage).args(["diff", &url(a), &url(b)]));
    });
    let migra_url = |db: &str| format!("postgresql+psycopg2://{}@{}:5432/{db}", user(), host());
    let migra_diff = time(|| {
        run(Command::new(&migra).args(["--unsafe", &migra_url(a), &migra_url(b)]));
    });
    println!(
        "schema: {TABLES} tables, {} indexes (+{TABLES} primary keys), {VIEWS} views; median of {RUNS} runs",
        TABLES * 3
    );
    println!("{:<44} {:>10}", "what", "wall");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{:<44} {:>8.0}ms",
        "manage sync, no-op (target ≤ 1000 ms)",
        ms(noop_sync)
    );
    println!(
        "{:<44} {:>8.0}ms",
        "manage sync, no-op after a model change",
        ms(reload_sync)
    );
    println!(
        "{:<44} {:>8.0}ms",
        "manage diff (live A → live B)",
        manage_diff.as_secs_f64() * 1000.0
    );
    println!(
        "{:<44} {:>8.0}ms",
        "migra (live A → live B)",
        migra_diff.as_secs_f64() * 1000.0
    );
    println!(
        "manage diff is {:.1}x faster than migra (target ≥ 2x)",
        migra_diff.as_secs_f64() / manage_diff.as_secs_f64()
    );
    for db in [a, b] {
        for name in [db.to_owned(), shadow(db)] {
            psql(
                "postgres",
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
    let _ = std::fs::remove_dir_all(&work);
}
