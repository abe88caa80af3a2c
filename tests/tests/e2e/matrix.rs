//! The type matrix: one table of edge values (integer limits of every width, decimals at their
//! precision limits, the smallest subnormal and largest doubles, empty text against NULL, text
//! beyond the BMP and 100,000 characters long, dates and timestamps at their limits and before 1970
//! and after 2038, with and without a time zone, binary with every byte value) written with
//! `create = true` to every SQL and file target, and read back: through Ferry's own readers where
//! the target is also a source (PostgreSQL, MySQL, SQLite, Delta), value by value.
//!
//! `cargo test --workspace matrix` runs it; each target is one test, so the matrix is
//! 1 source table x 5 targets x 17 columns x 3 rows, every cell compared, plus the SQLite target
//! read back as a source, every source kind into every target, a workbook, and the emulator.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int8Array, Int16Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, UInt32Array,
};
use datafusion::parquet::arrow::ArrowWriter;
use ferry::run::Status;
use ferry_tests::db::{Server, TestDb};
use ferry_tests::{Workspace, datafusion_exact, run};

/// Days and microseconds from 1970 of the edge dates and times.
const DAY_1: i32 = -719_162; // 0001-01-01
const DAY_9999: i32 = 2_932_896; // 9999-12-31
const MICROS_1: i64 = -62_135_596_800_000_000; // 0001-01-01T00:00:00
const MICROS_2038: i64 = 2_147_483_648_000_001; // 2038-01-19T03:14:08.000001
const MICROS_1900: i64 = -2_208_988_800_000_000; // 1900-01-01T00:00:00
const MICROS_2262: i64 = 9_223_372_800_000_001; // 2262-04-12T00:00:00.000001

fn edge_batch() -> RecordBatch {
    let every_byte: Vec<u8> = (0..=255).collect();
    let long = "x".repeat(100_000);
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(Int64Array::from(vec![1, 2, 3]))),
        (
            "i8",
            Arc::new(Int8Array::from(vec![Some(i8::MIN), Some(i8::MAX), None])),
        ),
        (
            "i16",
            Arc::new(Int16Array::from(vec![Some(i16::MIN), Some(i16::MAX), None])),
        ),
        (
            "i32",
            Arc::new(Int32Array::from(vec![Some(i32::MIN), Some(i32::MAX), None])),
        ),
        (
            "i64",
            Arc::new(Int64Array::from(vec![Some(i64::MIN), Some(i64::MAX), None])),
        ),
        (
            "u32",
            Arc::new(UInt32Array::from(vec![Some(0), Some(u32::MAX), None])),
        ),
        (
            "dec",
            Arc::new(
                Decimal128Array::from(vec![Some(10i128.pow(38) - 1), Some(-1), None])
                    .with_precision_and_scale(38, 10)
                    .unwrap(),
            ),
        ),
        (
            "money",
            Arc::new(
                Decimal128Array::from(vec![Some(-999_999_999_999), Some(0), None])
                    .with_precision_and_scale(12, 2)
                    .unwrap(),
            ),
        ),
        (
            "f64",
            Arc::new(Float64Array::from(vec![Some(5e-324), Some(f64::MAX), None])),
        ),
        (
            "f32",
            Arc::new(Float32Array::from(vec![Some(1.5), Some(f32::MIN), None])),
        ),
        (
            "flag",
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
        ),
        (
            "txt",
            Arc::new(StringArray::from(vec![
                Some(""),
                Some("😀 ünïcødé 'q' \"d\" \\ \t;"),
                None,
            ])),
        ),
        (
            "long",
            Arc::new(StringArray::from(vec![
                Some(long.as_str()),
                Some("y"),
                None,
            ])),
        ),
        ("d", Arc::new(Date32Array::from(vec![DAY_1, DAY_9999, -1]))),
        (
            "ts",
            Arc::new(TimestampMicrosecondArray::from(vec![
                -1,
                MICROS_2038,
                MICROS_1,
            ])),
        ),
        (
            "tstz",
            Arc::new(
                TimestampMicrosecondArray::from(vec![Some(MICROS_1900), Some(MICROS_2262), None])
                    .with_timezone("UTC"),
            ),
        ),
        (
            "bin",
            Arc::new(BinaryArray::from(vec![
                Some(every_byte.as_slice()),
                Some(b"".as_slice()),
                None,
            ])),
        ),
    ];
    RecordBatch::try_from_iter(columns).unwrap()
}

/// What every target must give back, as DataFusion prints it (`READ_BACK`), row by row.
fn expected() -> Vec<Vec<String>> {
    let every_byte: String = (0..=255u8).map(|b| format!("{b:02x}")).collect();
    let text = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut first = text(&[
        "1",
        "-128",
        "-32768",
        "-2147483648",
        "-9223372036854775808",
        "0",
        "9999999999999999999999999999.9999999999",
        "-9999999999.99",
        "5e-324",
        "1.5",
        "true",
        "",
        "100000",
        "0001-01-01",
        "1969-12-31T23:59:59.999999",
        "1900-01-01T00:00:00Z",
    ]);
    first.push(every_byte);
    vec![
        first,
        text(&[
            "2",
            "127",
            "32767",
            "2147483647",
            "9223372036854775807",
            "4294967295",
            "-0.0000000001",
            "0.00",
            "1.7976931348623157e308",
            "-3.4028235e38",
            "false",
            "😀 ünïcødé 'q' \"d\" \\ \t;",
            "1",
            "9999-12-31",
            "2038-01-19T03:14:08.000001",
            "2262-04-12T00:00:00.000001Z",
            "",
        ]),
        text(&[
            "3",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "1969-12-31",
            "0001-01-01T00:00:00",
            "NULL",
            "NULL",
        ]),
    ]
}

/// The same query over every read-back copy; numbers compared as their exact digits.
const READ_BACK: &str = "SELECT CAST(id AS VARCHAR) AS c0, CAST(i8 AS VARCHAR) AS c1, \
    CAST(i16 AS VARCHAR) AS c2, CAST(i32 AS VARCHAR) AS c3, CAST(i64 AS VARCHAR) AS c4, \
    CAST(u32 AS VARCHAR) AS c5, CAST(dec AS VARCHAR) AS c6, CAST(money AS VARCHAR) AS c7, \
    CAST(f64 AS VARCHAR) AS c8, CAST(f32 AS VARCHAR) AS c9, CAST(flag AS VARCHAR) AS c10, txt, \
    CAST(character_length(long) AS VARCHAR) AS c12, CAST(d AS VARCHAR) AS c13, \
    CAST(ts AS VARCHAR) AS c14, CAST(tstz AS VARCHAR) AS c15, encode(bin, 'hex') AS c16 \
    FROM t ORDER BY id";

/// A workspace holding the edge table as `in/edge.parquet`.
fn workspace() -> Workspace {
    let ws = Workspace::new();
    let path = ws.join("in/edge.parquet");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let batch = edge_batch();
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    ws
}

/// Runs the pipeline `body` (its sources, steps and target) in `ws` and expects every row written.
async fn run_ok(ws: &Workspace, file: &str, body: &str) {
    let pipeline = ws.pipeline(
        file,
        &format!("name = \"{}\"\n{body}", file.trim_end_matches(".toml")),
    );
    let report = run(&pipeline).await;
    assert_eq!(
        (report.status, report.rows_written),
        (Status::Completed, 3),
        "{file}: {report}"
    );
}

/// Writes the edge table into `target` (a `[target]` body, with its mode), reads it back from `source` (a
/// `[sources.t]` body) into parquet, and answers READ_BACK over that copy.
async fn round_trip(
    ws: &Workspace,
    connections: &str,
    target: &str,
    source: &str,
) -> Vec<Vec<String>> {
    run_ok(
        ws,
        "write.toml",
        &format!("{connections}\n[sources.edge]\npath = \"in/edge.parquet\"\n[target]\n{target}\n"),
    )
    .await;
    run_ok(
        ws,
        "read.toml",
        &format!("{connections}\n[sources.t]\n{source}\n[target]\npath = \"out/back.parquet\"\nmode = \"truncate\"\n"),
    )
    .await;
    datafusion_exact(&[("t", &ws.join("out/back.parquet"))], READ_BACK).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_parquet() {
    let ws = workspace();
    let back = round_trip(
        &ws,
        "",
        "path = \"out/copy.parquet\"\nmode = \"truncate\"",
        "path = \"out/copy.parquet\"",
    )
    .await;
    assert_eq!(back, expected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_delta() {
    let ws = workspace();
    let back = round_trip(
        &ws,
        "",
        "path = \"lake/copy\"\nformat = \"delta\"\nmode = \"insert\"",
        "path = \"lake/copy\"\nformat = \"delta\"",
    )
    .await;
    assert_eq!(back, expected());
}

async fn matrix_server(server: Server) -> Vec<Vec<String>> {
    let db = TestDb::new(server).await;
    let ws = workspace();
    let connections = format!("[connections.db]\nurl = \"{}\"", db.url());
    round_trip(
        &ws,
        &connections,
        "connection = \"db\"\ntable = \"edge\"\ncreate = true\nmode = \"insert\"",
        "connection = \"db\"\ntable = \"edge\"",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_postgres() {
    assert_eq!(matrix_server(Server::Postgres).await, expected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_mysql() {
    // MySQL's BOOLEAN is TINYINT(1), and a zoned timestamp lands in DATETIME(6) in UTC
    // (docs/TYPES.md): the same instants and truths, read back as 1/0 and without a zone.
    let mut expected = expected();
    expected[0][10] = "1".into();
    expected[1][10] = "0".into();
    expected[0][15] = "1900-01-01T00:00:00".into();
    expected[1][15] = "2262-04-12T00:00:00.000001".into();
    assert_eq!(matrix_server(Server::Mysql).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_sqlite() {
    let ws = workspace();
    run_ok(
        &ws,
        "write.toml",
        "[connections.db]\nurl = \"sqlite://out/edge.db\"\n[sources.edge]\npath = \"in/edge.parquet\"\n\
         [target]\nconnection = \"db\"\ntable = \"edge\"\nmode = \"insert\"\ncreate = true\n",
    )
    .await;
    let conn = rusqlite::Connection::open(ws.join("out/edge.db")).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT id, i8, i16, i32, i64, u32, dec, money, f64, f32, flag, txt, length(long), d, ts, \
             tstz, bin FROM edge ORDER BY id",
        )
        .unwrap();
    // SQLite's own storage classes, printed exactly: integers, REALs as their shortest exact
    // digits, text, and blobs in hex.
    let back: Vec<Vec<String>> = stmt
        .query_map([], |r| {
            (0..17)
                .map(|i| {
                    Ok(match r.get::<_, rusqlite::types::Value>(i)? {
                        rusqlite::types::Value::Null => "NULL".to_string(),
                        rusqlite::types::Value::Integer(v) => v.to_string(),
                        rusqlite::types::Value::Real(v) => format!("{v:?}"),
                        rusqlite::types::Value::Text(t) => t,
                        rusqlite::types::Value::Blob(b) => {
                            b.iter().map(|b| format!("{b:02x}")).collect()
                        }
                    })
                })
                .collect()
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut expected = expected();
    // Booleans are integers; a float32 is kept as the double it is; a decimal that fits a double's
    // 15 digits is a number (so 0.00 is 0), a longer one its exact text; timestamps are text
    // SQLite's date functions read.
    expected[0][10] = "1".into();
    expected[1][10] = "0".into();
    expected[1][9] = "-3.4028234663852886e38".into();
    expected[1][7] = "0".into();
    expected[0][14] = "1969-12-31 23:59:59.999999".into();
    expected[1][14] = "2038-01-19 03:14:08.000001".into();
    expected[2][14] = "0001-01-01 00:00:00".into();
    expected[0][15] = "1900-01-01 00:00:00Z".into();
    expected[1][15] = "2262-04-12 00:00:00.000001Z".into();
    assert_eq!(back, expected);

    // SQLite as a source: the same file read back through Ferry's SQLite reader.
    run_ok(
        &ws,
        "read.toml",
        "[connections.db]\nurl = \"sqlite://out/edge.db\"\n[sources.t]\nconnection = \"db\"\ntable = \"edge\"\n\
         [target]\npath = \"out/back.parquet\"\nmode = \"truncate\"\n",
    )
    .await;
    let back = datafusion_exact(&[("t", &ws.join("out/back.parquet"))], READ_BACK).await;
    let mut expected = self::expected();
    // INTEGER columns read as Int64 and REAL as Float64 (a float32 is the double it was stored
    // as); TIMESTAMP has no zone in SQLite: a zoned value is read as its UTC time.
    expected[1][9] = "-3.4028234663852886e38".into();
    expected[0][15] = "1900-01-01T00:00:00".into();
    expected[1][15] = "2262-04-12T00:00:00.000001".into();
    assert_eq!(back, expected);
}

/// The OData target against the Dataverse-like emulator, every Edm type it has: Int32 and Int64 at
/// their limits (beyond 2^53), Edm.Decimal, Edm.Double down to the smallest subnormal, Boolean,
/// empty text against null, text beyond the BMP and 100,000 characters long, Edm.Date at its
/// limits, Edm.DateTimeOffset before 1970 and after 2038 with microseconds, read back over HTTP.
/// Binary is refused before anything is written, naming the column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_odata() {
    let emu = ferry_tests::open_emulator(
        "[sets.edges]\nentity = \"edge\"\nkey = \"edgeid\"\nalternate_keys = [[\"code\"]]\n\
         [sets.edges.attributes]\ncode = { type = \"string\", max_length = 10 }\ni32 = { type = \"int\" }\n\
         i64 = { type = \"bigint\" }\nmoney = { type = \"money\" }\nf64 = { type = \"double\" }\n\
         flag = { type = \"boolean\" }\ntxt = { type = \"string\" }\nlongtext = { type = \"string\", max_length = 200000 }\n\
         d = { type = \"date\" }\ntstz = { type = \"datetime\" }\n",
    )
    .await;
    let ws = workspace();
    let connection = format!(
        "[connections.crm]\nurl = \"{}\"\nkind = \"dataverse\"\n",
        emu.url()
    );
    run_ok(
        &ws,
        "write.toml",
        &format!(
            "{connection}[sources.edge]\npath = \"in/edge.parquet\"\n[[steps]]\nname = \"out\"\n\
             sql = \"SELECT CAST(id AS VARCHAR) AS code, i32, i64, money, f64, flag, txt, long AS longtext, d, tstz FROM edge\"\n\
             [target]\nconnection = \"crm\"\ntable = \"edges\"\nmode = \"upsert\"\nkey = \"code\"\n"
        ),
    )
    .await;
    let records = ferry_tests::odata_records(
        &emu.url(),
        &emu.token_url(),
        "edges",
        "code,i32,i64,money,f64,flag,txt,longtext,d,tstz",
    )
    .await;
    let shown = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "NULL".to_string(),
        serde_json::Value::Number(n) if n.is_i64() => n.as_i64().unwrap().to_string(),
        serde_json::Value::Number(n) => format!("{:?}", n.as_f64().unwrap()),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut back: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let mut row: Vec<String> = ["code", "i32", "i64", "money", "f64", "flag", "txt"]
                .iter()
                .map(|c| shown(&r[*c]))
                .collect();
            row.push(match &r["longtext"] {
                serde_json::Value::String(s) => s.chars().count().to_string(),
                other => shown(other),
            });
            row.extend(["d", "tstz"].iter().map(|c| shown(&r[*c])));
            row
        })
        .collect();
    back.sort();
    let expected: Vec<Vec<String>> = self::expected()
        .into_iter()
        .map(|row| {
            [0, 3, 4, 7, 8, 10, 11, 12, 13, 15]
                .iter()
                .map(|&i| row[i].clone())
                .collect()
        })
        .collect();
    let mut expected = expected;
    // The emulator keeps an Edm.Decimal as a JSON number: 0.00 reads back 0.0 (the same number).
    expected[1][3] = "0.0".into();
    assert_eq!(back, expected);

    let pipeline = ws.pipeline(
        "binary.toml",
        &format!(
            "name = \"binary\"\n{connection}[sources.edge]\npath = \"in/edge.parquet\"\n[[steps]]\nname = \"out\"\n\
             sql = \"SELECT CAST(id + 10 AS VARCHAR) AS code, bin AS txt FROM edge\"\n\
             [target]\nconnection = \"crm\"\ntable = \"edges\"\nmode = \"upsert\"\nkey = \"code\"\n"
        ),
    );
    let error = match ferry::run::run(&pipeline, &Default::default()).await {
        Err(e) => e.to_string(),
        Ok(report) => report.to_string(),
    };
    assert!(
        error.contains("\"txt\"") && error.to_lowercase().contains("binary"),
        "{error}"
    );
    let mut codes: Vec<String> =
        ferry_tests::odata_records(&emu.url(), &emu.token_url(), "edges", "code")
            .await
            .iter()
            .map(|r| r["code"].as_str().unwrap().to_string())
            .collect();
    codes.sort();
    assert_eq!(codes, ["1", "2", "3"], "nothing more written");
}

/// A kind of source or target in the cross product, and what its types do to the printed values.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Parquet,
    Postgres,
    Mysql,
    Sqlite,
    Delta,
    /// A source only: the edge table as CSV with a declared schema.
    Csv,
}

impl Kind {
    /// The values this kind prints otherwise than parquet does (the same values): MySQL's
    /// BOOLEAN is TINYINT(1); MySQL and SQLite keep zoned timestamps as their UTC time without a
    /// zone; SQLite's REAL is a double; CSV's empty field is null for text too.
    fn adjust(self, expected: &mut [Vec<String>]) {
        match self {
            Kind::Mysql => {
                expected[0][10] = "1".into();
                expected[1][10] = "0".into();
                expected[0][15] = "1900-01-01T00:00:00".into();
                expected[1][15] = "2262-04-12T00:00:00.000001".into();
            }
            Kind::Sqlite => {
                expected[1][9] = "-3.4028234663852886e38".into();
                expected[0][15] = "1900-01-01T00:00:00".into();
                expected[1][15] = "2262-04-12T00:00:00.000001".into();
            }
            Kind::Csv => expected[0][11] = "NULL".into(),
            Kind::Parquet | Kind::Postgres | Kind::Delta => {}
        }
    }

    /// `[sources.t]` reading table or file `name` of this kind.
    fn source(self, name: &str) -> String {
        match self {
            Kind::Parquet => format!("path = \"out/{name}.parquet\""),
            Kind::Postgres => format!("connection = \"pg\"\ntable = \"{name}\""),
            Kind::Mysql => format!("connection = \"my\"\ntable = \"{name}\""),
            Kind::Sqlite => format!("connection = \"lite\"\ntable = \"{name}\""),
            Kind::Delta => format!("path = \"lake/{name}\"\nformat = \"delta\""),
            Kind::Csv => "path = \"in/edge.csv\"\nschema = { id = \"bigint\", i8 = \"tinyint\", \
                i16 = \"smallint\", i32 = \"int\", i64 = \"bigint\", u32 = \"int unsigned\", \
                dec = \"decimal(38,10)\", money = \"decimal(12,2)\", f64 = \"double\", f32 = \"real\", \
                flag = \"boolean\", txt = \"text\", long = \"text\", d = \"date\", ts = \"timestamp\", \
                tstz = \"timestamptz\" }"
                .to_string(),
        }
    }

    /// `[target]` writing table or file `name` of this kind.
    fn target(self, name: &str) -> String {
        match self {
            Kind::Parquet => format!("path = \"out/{name}.parquet\"\nmode = \"truncate\""),
            Kind::Postgres => {
                format!("connection = \"pg\"\ntable = \"{name}\"\ncreate = true\nmode = \"insert\"")
            }
            Kind::Mysql => {
                format!("connection = \"my\"\ntable = \"{name}\"\ncreate = true\nmode = \"insert\"")
            }
            Kind::Sqlite => {
                format!(
                    "connection = \"lite\"\ntable = \"{name}\"\ncreate = true\nmode = \"insert\""
                )
            }
            Kind::Delta => format!("path = \"lake/{name}\"\nformat = \"delta\"\nmode = \"insert\""),
            Kind::Csv => unreachable!("CSV is a source here"),
        }
    }
}

/// Every source kind into every SQL and file target: the edge table is first written to each
/// source kind by Ferry (CSV by Arrow), then each source is copied to each target, read back
/// through Ferry's reader of the target, and compared cell by cell with what the two kinds'
/// types make of the values. 6 sources x 5 targets x 17 columns x 3 rows (CSV: 16 columns).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_every_source_into_every_target() {
    let ws = workspace();
    let (_pg, _my, connections) = servers().await;
    write_edge_csv(&ws);
    let targets = [
        Kind::Parquet,
        Kind::Postgres,
        Kind::Mysql,
        Kind::Sqlite,
        Kind::Delta,
    ];
    let sources = [
        Kind::Parquet,
        Kind::Postgres,
        Kind::Mysql,
        Kind::Sqlite,
        Kind::Delta,
        Kind::Csv,
    ];
    for source in sources {
        if source != Kind::Csv {
            run_ok(
                &ws,
                "seed.toml",
                &format!(
                    "{connections}[sources.edge]\npath = \"in/edge.parquet\"\n[target]\n{}\n",
                    source.target("src")
                ),
            )
            .await;
        }
        for target in targets {
            let name = format!("m_{source:?}_{target:?}").to_lowercase();
            copy_and_read_back(&ws, &connections, &source.source("src"), target, &name).await;
            let mut expected = self::expected();
            let query = if source == Kind::Csv {
                for row in &mut expected {
                    row.pop();
                }
                READ_BACK.replace(", encode(bin, 'hex') AS c16", "")
            } else {
                READ_BACK.to_string()
            };
            source.adjust(&mut expected);
            target.adjust(&mut expected);
            let back = datafusion_exact(&[("t", &ws.join("out/back.parquet"))], &query).await;
            assert_eq!(back, expected, "{source:?} -> {target:?}");
        }
    }
}

/// An Excel workbook as a source, with a declared schema, into every SQL and file target: the
/// values a sheet can hold (its numbers are doubles, its dates start in 1900): Int32 limits, the
/// smallest subnormal and the largest double, a decimal, booleans, an empty text against an empty
/// cell, text beyond the BMP, dates to 9999-12-31 and a timestamp with milliseconds before 1970.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_xlsx_into_every_target() {
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
    let ws = Workspace::new();
    let (_pg, _my, connections) = servers().await;
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    let header = ["id", "i32", "f64", "money", "flag", "txt", "d", "ts"];
    for (c, h) in header.iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    let date = Format::new().set_num_format("yyyy-mm-dd");
    let stamp = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss.000");
    let at = |text: &str| ExcelDateTime::parse_from_str(text).unwrap();
    sheet.write_number(1, 0, 1).unwrap();
    sheet.write_number(1, 1, f64::from(i32::MIN)).unwrap();
    sheet.write_number(1, 2, 5e-324).unwrap();
    sheet.write_number(1, 3, -9_999_999_999.99).unwrap();
    sheet.write_boolean(1, 4, true).unwrap();
    sheet.write_string(1, 5, "").unwrap();
    sheet
        .write_datetime_with_format(1, 6, at("1900-01-01"), &date)
        .unwrap();
    sheet
        .write_datetime_with_format(1, 7, at("1969-07-20T20:17:40.123"), &stamp)
        .unwrap();
    sheet.write_number(2, 0, 2).unwrap();
    sheet.write_number(2, 1, f64::from(i32::MAX)).unwrap();
    sheet.write_number(2, 2, f64::MAX).unwrap();
    sheet.write_number(2, 3, 0.1).unwrap();
    sheet.write_boolean(2, 4, false).unwrap();
    sheet.write_string(2, 5, "😀 ünïcødé").unwrap();
    sheet
        .write_datetime_with_format(2, 6, at("9999-12-31"), &date)
        .unwrap();
    sheet
        .write_datetime_with_format(2, 7, at("2038-01-19T03:14:08.001"), &stamp)
        .unwrap();
    sheet.write_number(3, 0, 3).unwrap();
    std::fs::create_dir_all(ws.join("in")).unwrap();
    book.save(ws.join("in/edge.xlsx")).unwrap();
    let source = "path = \"in/edge.xlsx\"\nschema = { id = \"bigint\", i32 = \"int\", f64 = \"double\", \
        money = \"decimal(12,2)\", flag = \"boolean\", txt = \"text\", d = \"date\", ts = \"timestamp\" }";
    let query = "SELECT CAST(id AS VARCHAR) AS c0, CAST(i32 AS VARCHAR) AS c1, CAST(f64 AS VARCHAR) AS c2, \
        CAST(money AS VARCHAR) AS c3, CAST(flag AS VARCHAR) AS c4, txt, CAST(d AS VARCHAR) AS c6, \
        CAST(ts AS VARCHAR) AS c7 FROM t ORDER BY id";
    for target in [
        Kind::Parquet,
        Kind::Postgres,
        Kind::Mysql,
        Kind::Sqlite,
        Kind::Delta,
    ] {
        let name = format!("x_{target:?}").to_lowercase();
        copy_and_read_back(&ws, &connections, source, target, &name).await;
        let text = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (yes, no) = if target == Kind::Mysql {
            ("1", "0")
        } else {
            ("true", "false")
        };
        let expected = vec![
            text(&[
                "1",
                "-2147483648",
                "5e-324",
                "-9999999999.99",
                yes,
                // Excel has no empty text: an empty string is an empty cell.
                "NULL",
                "1900-01-01",
                "1969-07-20T20:17:40.123",
            ]),
            text(&[
                "2",
                "2147483647",
                "1.7976931348623157e308",
                "0.10",
                no,
                "😀 ünïcødé",
                "9999-12-31",
                "2038-01-19T03:14:08.001",
            ]),
            text(&["3", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL"]),
        ];
        let back = datafusion_exact(&[("t", &ws.join("out/back.parquet"))], query).await;
        assert_eq!(back, expected, "xlsx -> {target:?}");
    }
}

/// A database on each server, and the `[connections]` that name them (`pg`, `my`) and a SQLite
/// file (`lite`).
async fn servers() -> (TestDb, TestDb, String) {
    let pg = TestDb::new(Server::Postgres).await;
    let my = TestDb::new(Server::Mysql).await;
    let connections = format!(
        "[connections.pg]\nurl = \"{}\"\n[connections.my]\nurl = \"{}\"\n[connections.lite]\nurl = \"sqlite://out/matrix.db\"\n",
        pg.url(),
        my.url()
    );
    (pg, my, connections)
}

/// The edge table without its binary column (CSV holds none), as `in/edge.csv`, written by Arrow.
fn write_edge_csv(ws: &Workspace) {
    let batch = edge_batch();
    let without_binary = batch
        .project(&(0..batch.num_columns() - 1).collect::<Vec<_>>())
        .unwrap();
    let mut writer = arrow::csv::WriterBuilder::new()
        .with_header(true)
        .build(std::fs::File::create(ws.join("in/edge.csv")).unwrap());
    writer.write(&without_binary).unwrap();
}

/// Copies `source` (a `[sources.t]` body) into `target` as `name`, then reads that back through
/// Ferry's reader of the target into `out/back.parquet`.
async fn copy_and_read_back(
    ws: &Workspace,
    connections: &str,
    source: &str,
    target: Kind,
    name: &str,
) {
    run_ok(
        ws,
        "copy.toml",
        &format!(
            "{connections}[sources.t]\n{source}\n[target]\n{}\n",
            target.target(name)
        ),
    )
    .await;
    run_ok(
        ws,
        "back.toml",
        &format!(
            "{connections}[sources.t]\n{}\n[target]\npath = \"out/back.parquet\"\nmode = \"truncate\"\n",
            target.source(name)
        ),
    )
    .await;
}
