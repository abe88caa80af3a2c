//! Every source format read through a pipeline and written to parquet, compared row for row.

use ferry::run::Status;
use ferry_tests::{Workspace, parquet_rows, rows, run};

/// Copies source `from` (declared by `source_toml`) to parquet with `sql`, returns the rows landed.
async fn copy(ws: &Workspace, source_toml: &str, sql: &str) -> Vec<Vec<String>> {
    let pipeline = ws.pipeline(
        "copy.toml",
        &format!(
            r#"name = "copy"
{source_toml}
[[steps]]
name = "out"
sql = "{sql}"
[target]
path = "out/copy.parquet"
mode = "truncate"
"#
        ),
    );
    let report = run(&pipeline).await;
    assert_eq!(report.status, Status::Completed, "{report}");
    parquet_rows(&ws.join("out/copy.parquet")).await
}

#[tokio::test]
async fn csv_with_its_own_delimiter() {
    let ws = Workspace::new();
    ws.write(
        "in/people.txt",
        "id;name;score\n1;Ada;9.5\n2;Grace;\n3;Alan;7\n",
    );
    let got = copy(
        &ws,
        "[sources.people]\npath = \"in/people.txt\"\nformat = \"csv\"\ndelimiter = \";\"",
        "SELECT id, name, score FROM people",
    )
    .await;
    assert_eq!(
        got,
        rows(&[
            &["1", "Ada", "9.5"],
            &["2", "Grace", "NULL"],
            &["3", "Alan", "7"]
        ])
    );
}

#[tokio::test]
async fn newline_delimited_json() {
    let ws = Workspace::new();
    ws.write(
        "in/events.json",
        "{\"id\": 1, \"kind\": \"click\", \"ok\": true}\n{\"id\": 2, \"kind\": \"view\", \"ok\": false}\n",
    );
    let got = copy(
        &ws,
        "[sources.events]\npath = \"in/events.json\"",
        "SELECT id, kind, ok FROM events",
    )
    .await;
    assert_eq!(
        got,
        rows(&[&["1", "click", "true"], &["2", "view", "false"]])
    );
}

#[tokio::test]
async fn parquet_glob_over_several_files() {
    let ws = Workspace::new();
    for (i, body) in ["id,v\n1,a\n2,b\n", "id,v\n3,c\n"].iter().enumerate() {
        ws.write(&format!("csv/part{i}.csv"), body);
        let p = ws.pipeline(
            &format!("make{i}.toml"),
            &format!(
                r#"name = "m"
[sources.s]
path = "csv/part{i}.csv"
[target]
path = "in/orders/part-{i}.parquet"
mode = "truncate"
"#
            ),
        );
        assert_eq!(run(&p).await.status, Status::Completed);
    }
    ws.write("in/orders/ignored.txt", "not parquet");
    let got = copy(
        &ws,
        "[sources.orders]\npath = \"in/orders/*.parquet\"",
        "SELECT id, v FROM orders",
    )
    .await;
    assert_eq!(got, rows(&[&["1", "a"], &["2", "b"], &["3", "c"]]));
}

#[tokio::test]
async fn excel_cells_get_their_types() {
    let ws = Workspace::new();
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("Accounts").unwrap();
    let date = rust_xlsxwriter::ExcelDateTime::from_ymd(2024, 3, 15).unwrap();
    let date_format = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
    for (c, h) in ["id", "name", "balance", "active", "opened"]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    sheet.write_number(1, 0, 1).unwrap();
    sheet.write_string(1, 1, "Contoso").unwrap();
    sheet.write_number(1, 2, 1250.5).unwrap();
    sheet.write_boolean(1, 3, true).unwrap();
    sheet
        .write_datetime_with_format(1, 4, &date, &date_format)
        .unwrap();
    sheet.write_number(2, 0, 2).unwrap();
    sheet.write_string(2, 1, "Fabrikam").unwrap();
    sheet.write_number(2, 2, 99).unwrap();
    sheet.write_boolean(2, 3, false).unwrap();
    std::fs::create_dir_all(ws.join("in")).unwrap();
    book.save(ws.join("in/accounts.xlsx")).unwrap();

    let got = copy(
        &ws,
        "[sources.accounts]\npath = \"in/accounts.xlsx\"\nsheet = \"Accounts\"",
        "SELECT id + 0 AS id, name, balance, active, opened FROM accounts",
    )
    .await;
    assert_eq!(
        got,
        rows(&[
            &["1", "Contoso", "1250.5", "true", "2024-03-15"],
            &["2", "Fabrikam", "99", "false", "NULL"]
        ])
    );
}

#[tokio::test]
async fn excel_missing_sheet_lists_the_sheets() {
    let ws = Workspace::new();
    let mut book = rust_xlsxwriter::Workbook::new();
    book.add_worksheet().set_name("Data").unwrap();
    std::fs::create_dir_all(ws.join("in")).unwrap();
    book.save(ws.join("in/b.xlsx")).unwrap();
    let pipeline = ws.pipeline(
        "p.toml",
        r#"name = "x"
[sources.b]
path = "in/b.xlsx"
sheet = "Sheet9"
[target]
path = "o.csv"
mode = "truncate"
"#,
    );
    let err = match ferry::plan::plan(&pipeline).await {
        Ok(_) => panic!("should fail"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("has no sheet \"Sheet9\""), "{err}");
    assert!(err.contains("its sheets are: Data"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_table_written_then_read_as_a_source() {
    let ws = Workspace::new();
    ws.write("in/a.csv", "id,name\n1,x\n2,y\n");
    let write = ws.pipeline(
        "w.toml",
        r#"name = "w"
[sources.a]
path = "in/a.csv"
[target]
path = "lake/a/"
format = "delta"
mode = "truncate"
"#,
    );
    assert_eq!(run(&write).await.status, Status::Completed);
    let got = copy(
        &ws,
        "[sources.a]\npath = \"lake/a\"\nformat = \"delta\"",
        "SELECT id, name FROM a",
    )
    .await;
    assert_eq!(got, rows(&[&["1", "x"], &["2", "y"]]));
}
