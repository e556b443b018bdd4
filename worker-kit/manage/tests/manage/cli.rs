use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::{Db, admin_dsn, unique};

struct Workdir {
    dir: std::path::PathBuf,
}

impl Workdir {
    fn new(models: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(unique("cli"));
        let svc = dir.join("models").join("svc");
        std::fs::create_dir_all(&svc).unwrap();
        for (name, text) in models {
            std::fs::write(svc.join(name), text).unwrap();
        }
        Self { dir }
    }

    fn manage(&self, args: &[&str], stdin: &str) -> Output {
        self.manage_with(args, &[], stdin)
    }

    /// As `manage`, with `env` set (or, for an empty value, removed).
    fn manage_with(&self, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_manage"));
        for (k, v) in env {
            if v.is_empty() {
                command.env_remove(k);
            } else {
                command.env(k, v);
            }
        }
        let mut child = command
            .args(args)
            .current_dir(&self.dir)
            .env_remove("DB_MAIN_DSN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn empty_db(prefix: &str) -> Db {
    Db::with(prefix, "").await
}

#[tokio::test]
async fn prompt_check_refusal_and_apply() {
    let db = empty_db("cli").await;
    let url = admin_dsn(&db.name);
    let w = Workdir::new(&[("t.sql", "CREATE TABLE t (id int PRIMARY KEY, note text);")]);

    let out = w.manage(&["sync", "--database-url", &url, "--check"], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    let out = w.manage(&["sync", "--database-url", &url], "n\n");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("Apply these changes? [y/N]")
            && text(&out).contains("Nothing applied.")
    );
    assert!(db.catalog().await.is_empty(), "answering n applies nothing");

    let out = w.manage(&["sync", "--database-url", &url], "y\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = w.manage(&["sync", "--database-url", &url, "--check"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("Already in sync."));

    // Dropping a column loses data: refused (exit 3) unless --unsafe.
    std::fs::write(
        w.dir.join("models/svc/t.sql"),
        "CREATE TABLE t (id int PRIMARY KEY);",
    )
    .unwrap();
    let out = w.manage(&["sync", "--database-url", &url, "--noprompt"], "");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("--unsafe"), "{}", text(&out));
    let out = w.manage(
        &["sync", "--database-url", &url, "--noprompt", "--unsafe"],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    db.drop().await;
}

#[tokio::test]
async fn sync_creates_a_missing_database() {
    let name = unique("fresh");
    let url = admin_dsn(&name);
    let w = Workdir::new(&[("t.sql", "CREATE TABLE t (id int);")]);
    let out = w.manage(&["sync", "--database-url", &url, "--noprompt"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains(&format!("Creating database {name}")));
    let (server, _) = worker_kit_manage::Server::from_dsn(&url).unwrap();
    worker_kit_manage::Shadow::drop_all(&server, &name)
        .await
        .unwrap();
    server.drop_db(&name).await.unwrap();
}

#[tokio::test]
async fn a_syntax_error_is_reported_as_file_and_line() {
    let db = empty_db("clisyntax").await;
    let w = Workdir::new(&[("t.sql", "-- a table\nCREATE TABLE t (\n  id int,\n);\n")]);
    let out = w.manage(
        &["sync", "--database-url", &admin_dsn(&db.name), "--noprompt"],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("models/svc/t.sql:2: syntax error"), "{err}");
    assert!(
        db.catalog().await.is_empty(),
        "nothing applied after a failed load"
    );
    db.drop().await;
}

#[tokio::test]
async fn pending_needs_a_dump_and_says_how_to_make_one() {
    let w = Workdir::new(&[("t.sql", "CREATE TABLE t (id int);")]);
    let out = w.manage(&["pending", "--service", "svc"], "");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("production.dump.sql not found") && err.contains("pg_dump --schema-only"),
        "{err}"
    );
}

#[tokio::test]
async fn a_pg_dump_of_a_database_built_from_the_models_has_nothing_pending() {
    let models = "CREATE TYPE state AS ENUM ('new', 'done');
        CREATE TABLE tasks (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text NOT NULL CHECK (title <> ''), state state NOT NULL DEFAULT 'new', serial_no serial);
        CREATE INDEX tasks_open ON tasks (id) WHERE state = 'new';
        CREATE VIEW open_tasks AS SELECT id, title FROM tasks WHERE state = 'new';
        CREATE FUNCTION count_open() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM tasks WHERE state = ''new''';
        COMMENT ON TABLE tasks IS 'things to do';";
    let db = empty_db("dump").await;
    let w = Workdir::new(&[("tasks.sql", models)]);
    let url = admin_dsn(&db.name);
    let out = w.manage(&["sync", "--database-url", &url, "--noprompt"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let migrations = w.dir.join("migrations").join("svc");
    std::fs::create_dir_all(&migrations).unwrap();
    let dump = migrations.join("production.dump.sql");
    let status = Command::new("pg_dump")
        .args([
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "-d",
            &url,
            "-f",
        ])
        .arg(&dump)
        .status()
        .expect("pg_dump is installed");
    assert!(status.success());
    let out = w.manage(&["pending", "--service", "svc", "--database-url", &url], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let pending = std::fs::read_to_string(migrations.join("pending.sql")).unwrap();
    assert!(pending.contains("Nothing to do"), "{pending}");
    assert!(
        text(&out).contains("Wrote migrations/svc/pending.sql"),
        "{}",
        text(&out)
    );
    assert!(
        pending.starts_with("-- Generated by `manage pending --service svc`."),
        "{pending}"
    );

    // Now the models move on: pending has exactly that change.
    std::fs::write(
        w.dir.join("models/svc/more.sql"),
        "ALTER TABLE tasks ADD COLUMN due date;",
    )
    .unwrap();
    let out = w.manage(&["pending", "--service", "svc", "--database-url", &url], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let pending = std::fs::read_to_string(migrations.join("pending.sql")).unwrap();
    assert!(
        pending.contains("ALTER TABLE public.tasks ADD COLUMN due date;"),
        "{pending}"
    );
    assert!(pending.contains("SET lock_timeout = '5s';"), "{pending}");
    assert!(
        pending.contains("SET statement_timeout = '20min';"),
        "{pending}"
    );
    assert!(
        pending.contains("-- Step 1 of 1: its own transaction"),
        "{pending}"
    );
    let check = |w: &Workdir| {
        w.manage(
            &[
                "pending",
                "--service",
                "svc",
                "--database-url",
                &url,
                "--check",
            ],
            "",
        )
    };
    assert_eq!(check(&w).status.code(), Some(0), "{}", text(&check(&w)));

    // The fingerprint guard: the script applies to the database the dump was made from,
    // and stops, changing nothing, on one whose schema is no longer that.
    let psql = |w: &Workdir| {
        Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &url, "-f"])
            .arg(migrations.join("pending.sql"))
            .current_dir(&w.dir)
            .output()
            .unwrap()
    };
    let out = psql(&w);
    assert!(out.status.success(), "{}", text(&out));
    let added = |client: tokio_postgres::Client| async move {
        client
            .query_one(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = 'tasks' AND column_name = 'due'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    assert_eq!(added(db.client().await).await, 1);
    db.client()
        .await
        .batch_execute("ALTER TABLE tasks DROP COLUMN due; ALTER TABLE tasks ADD COLUMN other int")
        .await
        .unwrap();
    let out = psql(&w);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("is not the one this script was made from")
            && text(&out).contains("nothing was changed"),
        "{}",
        text(&out)
    );
    assert_eq!(added(db.client().await).await, 0, "the script went on");

    // The models move on again: the file on disk is stale.
    std::fs::write(
        w.dir.join("models/svc/more.sql"),
        "ALTER TABLE tasks ADD COLUMN due date; ALTER TABLE tasks ADD COLUMN done_at date;",
    )
    .unwrap();
    let out = check(&w);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("is stale"), "{}", text(&out));
    db.drop().await;
}

#[test]
fn help_on_every_command() {
    for args in [
        &["--help"][..],
        &["sync", "--help"],
        &["pending", "--help"],
        &["diff", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_manage"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(!out.stdout.is_empty());
    }
    let out = Command::new(env!("CARGO_BIN_EXE_manage"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("sync")
            && help.contains("pending")
            && help.contains("diff")
            && help.contains("Exit codes")
    );
    let _ = Path::new("");
}

// `manage diff` of two model directories prints the plan and leaves no database behind.
#[tokio::test]
async fn diff_of_two_directories_leaves_no_database_behind() {
    let w = Workdir::new(&[("t.sql", "CREATE TABLE t (id int);")]);
    let other = w.dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("t.sql"), "CREATE TABLE t (id int, note text);").unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_manage"))
        .args(["diff", "models/svc", "other", "--database-url"])
        .arg(admin_dsn("postgres"))
        .current_dir(&w.dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("ALTER TABLE public.t ADD COLUMN note text"),
        "{}",
        text(&out)
    );
    let (server, _) = worker_kit_manage::Server::from_dsn(&admin_dsn("postgres")).unwrap();
    let left: i64 = server
        .connect("postgres")
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM pg_database WHERE shobj_description(oid, 'pg_database') LIKE $1",
            &[&format!("manage shadow of % {pid} %")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

/// PGSSLMODE and PGSSLROOTCERT reach the DSN manage builds from the PG* variables (and any
/// DSN that names no sslmode of its own), as libpq's tools read them.
#[tokio::test]
async fn pgsslmode_is_honoured_for_the_dsn_built_from_pg_variables() {
    let w = Workdir::new(&[]);
    let shadows = ["shadows", "list"];
    let out = w.manage_with(&shadows, &[("PGSSLMODE", "disable")], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // verify-full with no CA to check the server against: refused, saying what is missing.
    let out = w.manage_with(
        &shadows,
        &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", "")],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("sslmode=verify-full needs sslrootcert"),
        "{}",
        text(&out)
    );
    // A CA file that is not there is read, not ignored.
    let out = w.manage_with(
        &shadows,
        &[
            ("PGSSLMODE", "verify-ca"),
            ("PGSSLROOTCERT", "/nonexistent/ca.pem"),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("sslrootcert=/nonexistent/ca.pem: cannot read it"),
        "{}",
        text(&out)
    );
    // What cannot be honoured is refused by name.
    let out = w.manage_with(&shadows, &[("PGSSLMODE", "allow")], "");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("PGSSLMODE: sslmode=allow is not supported"),
        "{}",
        text(&out)
    );
    // The DSN's own sslmode wins over PGSSLMODE.
    let url = format!("{}?sslmode=disable", admin_dsn("postgres"));
    let out = w.manage_with(
        &["shadows", "list", "--database-url", &url],
        &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", "")],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
