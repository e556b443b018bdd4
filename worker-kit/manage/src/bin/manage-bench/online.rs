//! `manage-bench online [ROWS]`: the longest wait of an application's INSERT while `manage
//! sync` applies each online form to a table of ROWS rows (default 1,000,000), beside the
//! plain form (`--atomic`) of the same change. A writer inserts one row after another on
//! its own session for the whole sync; its longest insert is what the change cost the
//! application.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const DB: &str = "manage_bench_online";

const BASE: &str = "CREATE TABLE owners (id int PRIMARY KEY);\n\
     CREATE TABLE big (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v int NOT NULL, note text, owner_id int);\n";

/// Each form: its name, and the model that asks for it.
fn forms() -> Vec<(&'static str, String)> {
    vec![
        (
            "index (CONCURRENTLY)",
            format!("{BASE}CREATE INDEX big_v ON big (v);\n"),
        ),
        (
            "foreign key (NOT VALID, VALIDATE)",
            BASE.replace("owner_id int", "owner_id int REFERENCES owners (id)"),
        ),
        (
            "check (NOT VALID, VALIDATE)",
            BASE.replace("owner_id int)", "owner_id int, CHECK (v > 0))"),
        ),
        (
            "SET NOT NULL (through a CHECK)",
            BASE.replace("note text", "note text NOT NULL"),
        ),
        (
            "UNIQUE INCLUDE (index, USING INDEX)",
            BASE.replace(
                "owner_id int)",
                "owner_id int, UNIQUE NULLS NOT DISTINCT (id) INCLUDE (v))",
            ),
        ),
    ]
}

/// Inserts into `big` until `stop`, and returns the longest insert and how many ran.
fn writer(url: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(Duration, usize)> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the writer");
        rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("the writer connects");
            tokio::spawn(conn);
            let mut longest = Duration::ZERO;
            let mut count = 0;
            while !stop.load(Ordering::SeqCst) {
                let t = Instant::now();
                client
                    .execute(
                        "INSERT INTO big (v, note, owner_id) VALUES (1, 'w', 1)",
                        &[],
                    )
                    .await
                    .expect("the writer's insert");
                longest = longest.max(t.elapsed());
                count += 1;
            }
            (longest, count)
        })
    })
}

fn write_model(models: &Path, sql: &str) {
    std::fs::write(models.join("schema.sql"), sql).unwrap();
}

pub(crate) fn run(manage: &Path, rows: u64) {
    let work = std::env::temp_dir().join(format!("manage-bench-online-{}", std::process::id()));
    let models = work.join("models").join("bench");
    std::fs::create_dir_all(&models).unwrap();
    let drop_all = || {
        for name in [DB.to_owned(), super::shadow(DB)] {
            super::psql(
                "postgres",
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    };
    drop_all();
    let sync = |extra: &[&str]| {
        let out = Command::new(manage)
            .args(["sync", "--noprompt", "--database-url", &super::url(DB)])
            .args(extra)
            .current_dir(&work)
            .output()
            .expect("manage runs");
        assert!(
            out.status.success(),
            "manage sync {extra:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    write_model(&models, BASE);
    sync(&[]);
    super::psql(DB, "INSERT INTO owners SELECT generate_series(1, 1000)");
    super::psql(
        DB,
        &format!(
            "INSERT INTO big (v, note, owner_id) SELECT g, 'x', g % 1000 + 1 FROM generate_series(1, {rows}) g"
        ),
    );
    super::psql(DB, "VACUUM ANALYZE big");
    println!("table: {rows} rows; a writer inserts one row after another during each sync");
    println!(
        "{:<36} {:>16} {:>10} {:>16} {:>10}",
        "form", "in steps: wait", "sync", "--atomic: wait", "sync"
    );
    for (name, model) in forms() {
        let mut cells = Vec::new();
        for extra in [&[][..], &["--atomic", "--allow-hazard", "lock"][..]] {
            write_model(&models, &model);
            let stop = Arc::new(AtomicBool::new(false));
            let w = writer(super::url(DB), stop.clone());
            let t = Instant::now();
            sync(extra);
            let wall = t.elapsed();
            stop.store(true, Ordering::SeqCst);
            let (longest, count) = w.join().expect("the writer");
            assert!(count > 0);
            cells.push((longest, wall));
            // Back to the base schema for the next run.
            write_model(&models, BASE);
            sync(&[]);
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{:<36} {:>14.0}ms {:>8.0}ms {:>14.0}ms {:>8.0}ms",
            name,
            ms(cells[0].0),
            ms(cells[0].1),
            ms(cells[1].0),
            ms(cells[1].1)
        );
    }
    drop_all();
    let _ = std::fs::remove_dir_all(&work);
}
