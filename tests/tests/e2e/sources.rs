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

/// A SQLite file as a source: a table and a query (joined with a CSV in DataFusion), declared types
/// kept; a value SQLite let into a column of another type stops the read naming the column, the row
/// and the value; a missing table lists the file's tables; a missing file is not created.
#[tokio::test]
async fn sqlite_tables_and_queries_are_sources() {
    let ws = Workspace::new();
    let db = ws.join("legacy.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, balance DECIMAL(10,2), since DATE, vip BOOLEAN);
         INSERT INTO customers VALUES (1, 'Acme', 1234.50, '1969-07-20', 1), (2, 'Globex', -0.01, '2024-02-29', 0), (3, NULL, NULL, NULL, NULL);",
    )
    .unwrap();
    ws.write("regions.csv", "id,region\n1,EMEA\n2,APAC\n");
    let source = "[connections.legacy]\nurl = \"sqlite://legacy.db\"\n\
        [sources.customers]\nconnection = \"legacy\"\ntable = \"customers\"\n\
        [sources.big]\nconnection = \"legacy\"\nquery = \"SELECT id FROM customers WHERE balance > 1000\"\n\
        [sources.regions]\npath = \"regions.csv\"";
    let landed = copy(
        &ws,
        source,
        "SELECT c.id, c.name, CAST(c.balance AS VARCHAR) AS balance, arrow_typeof(c.balance) AS balance_type, CAST(c.since AS VARCHAR) AS since, c.vip, r.region, b.id IS NOT NULL AS big FROM customers c LEFT JOIN regions r ON r.id = c.id LEFT JOIN big b ON b.id = c.id",
    )
    .await;
    assert_eq!(
        landed,
        // Numbers are compared by value (1234.50 reads 1234.5); the type is the declared one.
        rows(&[
            &[
                "1",
                "Acme",
                "1234.5",
                "Decimal128(10, 2)",
                "1969-07-20",
                "true",
                "EMEA",
                "true"
            ],
            &[
                "2",
                "Globex",
                "-0.01",
                "Decimal128(10, 2)",
                "2024-02-29",
                "false",
                "APAC",
                "false"
            ],
            &[
                "3",
                "NULL",
                "NULL",
                "Decimal128(10, 2)",
                "NULL",
                "NULL",
                "NULL",
                "false"
            ],
        ])
    );

    conn.execute(
        "INSERT INTO customers VALUES (4, 'Initech', 'n/a', NULL, 0)",
        [],
    )
    .unwrap();
    let pipeline = ws.pipeline(
        "bad.toml",
        "name = \"bad\"\n[connections.legacy]\nurl = \"sqlite://legacy.db\"\n[sources.customers]\nconnection = \"legacy\"\ntable = \"customers\"\n[target]\npath = \"out/bad.parquet\"\nmode = \"truncate\"\n",
    );
    let report = run(&pipeline).await;
    assert_eq!(report.status, Status::Failed, "{report}");
    let error = report.to_string();
    assert!(
        error.contains("column \"balance\"") && error.contains("the text 'n/a' at row 4"),
        "{error}"
    );

    let missing_table = ws.pipeline(
        "missing.toml",
        "name = \"missing\"\n[connections.legacy]\nurl = \"sqlite://legacy.db\"\n[sources.c]\nconnection = \"legacy\"\ntable = \"customer\"\n[target]\npath = \"out/m.parquet\"\nmode = \"truncate\"\n",
    );
    let err = ferry::run::run(&missing_table, &Default::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no such table: customer") && err.contains("customers"),
        "{err}"
    );

    let missing_file = ws.pipeline(
        "nofile.toml",
        "name = \"nofile\"\n[connections.legacy]\nurl = \"sqlite://legacy2.db\"\n[sources.c]\nconnection = \"legacy\"\ntable = \"customers\"\n[target]\npath = \"out/n.parquet\"\nmode = \"truncate\"\n",
    );
    let err = ferry::run::run(&missing_file, &Default::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not exist"), "{err}");
    assert!(!ws.join("legacy2.db").exists(), "a source is never created");
}

/// `schema` on a CSV source: declared columns are parsed as declared (codes keep their leading
/// zeros, amounts are exact decimals, dates are dates), the others inferred; a value that is not
/// its declared type stops the read naming the line; a declared column the file lacks is named.
#[tokio::test]
async fn csv_and_excel_columns_read_as_declared() {
    let ws = Workspace::new();
    ws.write(
        "accounts.csv",
        "code,amount,opened,visits\n00123,1250.10,2024-02-29,3\n007,-0.01,1969-07-20,4\n",
    );
    let source = "[sources.accounts]\npath = \"accounts.csv\"\n\
        schema = { code = \"text\", amount = \"decimal(12,2)\", opened = \"date\" }";
    let got = copy(
        &ws,
        source,
        "SELECT code, CAST(amount AS VARCHAR) AS amount, arrow_typeof(amount) AS amount_type, CAST(opened AS VARCHAR) AS opened, arrow_typeof(visits) AS visits_type FROM accounts",
    )
    .await;
    assert_eq!(
        got,
        rows(&[
            &[
                "00123",
                "1250.1",
                "Decimal128(12, 2)",
                "2024-02-29",
                "Int64"
            ],
            &["007", "-0.01", "Decimal128(12, 2)", "1969-07-20", "Int64"],
        ])
    );

    ws.write(
        "bad.csv",
        "code,amount,opened,visits\n00123,1250.10,2024-02-29,3\n007,n/a,1969-07-20,4\n",
    );
    let pipeline = ws.pipeline(
        "bad.toml",
        "name = \"bad\"\n[sources.accounts]\npath = \"bad.csv\"\nschema = { amount = \"decimal(12,2)\" }\n[target]\npath = \"out/bad.parquet\"\nmode = \"truncate\"\n",
    );
    let report = run(&pipeline).await;
    assert_eq!(report.status, Status::Failed, "{report}");
    let error = report.to_string();
    // Arrow's CSV reader names the value of a decimal, and the column and line of other types.
    assert!(
        error.contains("n/a") && error.contains("decimal"),
        "{error}"
    );
    ws.write(
        "bad.csv",
        "code,amount,opened,visits\n00123,1,2024-02-29,3\n007,2,1969-07-20,many\n",
    );
    let pipeline = ws.pipeline(
        "bad.toml",
        "name = \"bad\"\n[sources.accounts]\npath = \"bad.csv\"\nschema = { visits = \"int\" }\n[target]\npath = \"out/bad.parquet\"\nmode = \"truncate\"\n",
    );
    let report = run(&pipeline).await;
    assert_eq!(report.status, Status::Failed, "{report}");
    let error = report.to_string();
    assert!(error.contains("many") && error.contains("line"), "{error}");

    let typo = ws.pipeline(
        "typo.toml",
        "name = \"typo\"\n[sources.accounts]\npath = \"accounts.csv\"\nschema = { amuont = \"decimal(12,2)\" }\n[target]\npath = \"out/t.parquet\"\nmode = \"truncate\"\n",
    );
    let err = ferry::run::run(&typo, &Default::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("declares amuont, which it does not have") && err.contains("amount"),
        "{err}"
    );
    let wrong = ferry::spec::Pipeline::parse(
        &ws.join("wrong.toml"),
        "name = \"w\"\n[sources.a]\npath = \"accounts.csv\"\nschema = { amount = \"money\" }\n[target]\npath = \"o.parquet\"\nmode = \"truncate\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        wrong.contains("wrong.toml:4:") && wrong.contains("\"money\" is not a type"),
        "{wrong}"
    );

    // Excel: the cells as the sheet types them, cast to the declared types.
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in ["id", "amount"].iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    sheet.write_number(1, 0, 1).unwrap();
    sheet.write_number(1, 1, 0.1).unwrap();
    sheet.write_number(2, 0, 9_007_199_254_740_992.0).unwrap();
    sheet.write_number(2, 1, 1250.5).unwrap();
    book.save(ws.join("amounts.xlsx")).unwrap();
    let got = copy(
        &ws,
        "[sources.amounts]\npath = \"amounts.xlsx\"\nschema = { id = \"bigint\", amount = \"decimal(12,2)\" }",
        "SELECT CAST(id AS VARCHAR) AS id, arrow_typeof(id) AS id_type, CAST(amount AS VARCHAR) AS amount, arrow_typeof(amount) AS amount_type FROM amounts",
    )
    .await;
    assert_eq!(
        got,
        rows(&[
            &["1", "Int64", "0.1", "Decimal128(12, 2)"],
            &["9007199254740992", "Int64", "1250.5", "Decimal128(12, 2)"],
        ])
    );
}
