//! Incremental sources: every file read exactly once across runs; a changed file is caught.

use ferry::run::Status;
use ferry_tests::{Workspace, rows, run, sqlite_rows};

fn pipeline(on_changed: &str) -> String {
    format!(
        r#"name = "inc"
[connections.db]
url = "sqlite://db.sqlite"
[sources.drops]
path = "dropbox/*.csv"
incremental = true
{on_changed}
[target]
connection = "db"
table = "t"
mode = "insert"
key = "id"
create = true
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_runs_read_each_file_once_and_a_changed_file_is_caught() {
    let ws = Workspace::new();
    let p = ws.pipeline("p.toml", &pipeline(""));
    ws.write("dropbox/a.csv", "id,v\n1,a1\n2,a2\n");
    let first = run(&p).await;
    assert_eq!(
        (first.status, first.rows_read, first.rows_written),
        (Status::Completed, 2, 2),
        "{first}"
    );

    ws.write("dropbox/b.csv", "id,v\n3,b3\n");
    let second = run(&p).await;
    assert_eq!(
        (second.status, second.rows_read, second.rows_written),
        (Status::Completed, 1, 1),
        "{second}"
    );

    ws.write("dropbox/c.csv", "id,v\n4,c4\n5,c5\n6,c6\n");
    let third = run(&p).await;
    assert_eq!(
        (third.status, third.rows_read, third.rows_written),
        (Status::Completed, 3, 3),
        "{third}"
    );

    // Nothing new: nothing read.
    let idle = run(&p).await;
    assert_eq!(
        (idle.status, idle.rows_read),
        (Status::Completed, 0),
        "{idle}"
    );
    let all = [
        ["1", "a1"],
        ["2", "a2"],
        ["3", "b3"],
        ["4", "c4"],
        ["5", "c5"],
        ["6", "c6"],
    ];
    let expected: Vec<&[&str]> = all.iter().map(|r| &r[..]).collect();
    assert_eq!(
        sqlite_rows(&ws.join("db.sqlite"), "SELECT id, v FROM t"),
        rows(&expected)
    );

    // A consumed file that changes stops the run, naming it.
    ws.write("dropbox/b.csv", "id,v\n3,b3\n7,b7\n");
    let err = ferry::run::run(&p, &Default::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("dropbox/b.csv was consumed by run"), "{err}");
    assert!(
        err.contains("on_changed_file = \"reprocess\" under [sources.drops]"),
        "{err}"
    );

    // Asked to, it reads the changed file again (and only it).
    let p = ws.pipeline("p.toml", &pipeline("on_changed_file = \"reprocess\""));
    let again = run(&p).await;
    assert_eq!(
        (
            again.status,
            again.rows_read,
            again.rows_written,
            again.rows_skipped
        ),
        (Status::Completed, 2, 1, 1),
        "{again}"
    );
    let mut expected = expected;
    expected.push(&["7", "b7"]);
    assert_eq!(
        sqlite_rows(&ws.join("db.sqlite"), "SELECT id, v FROM t"),
        rows(&expected)
    );
}
