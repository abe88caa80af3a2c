//! The quickstart's small input data (checked in under pipelines/data): orders as parquet, customers
//! as CSV, regions as an Excel workbook. Regenerate with `ferry-bench quickstart-data`.

use std::path::Path;

use anyhow::Result;
use rust_xlsxwriter::Workbook;

use ferry_bench::data::{mix, orders_batch};

const ORDERS: usize = 3000;
const CUSTOMERS: u64 = 200;
const FIRST: [&str; 10] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "John",
];
const LAST: [&str; 10] = [
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Hamilton", "Ritchie",
    "Allen", "Backus",
];
const COUNTRIES: [(&str, &str, &str); 8] = [
    ("DE", "Germany", "EMEA"),
    ("FR", "France", "EMEA"),
    ("NL", "Netherlands", "EMEA"),
    ("US", "United States", "Americas"),
    ("CA", "Canada", "Americas"),
    ("BR", "Brazil", "Americas"),
    ("JP", "Japan", "APAC"),
    ("AU", "Australia", "APAC"),
];
const SEGMENTS: [&str; 3] = ["retail", "wholesale", "online"];

pub fn write(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let orders = orders_batch(0, ORDERS, CUSTOMERS, 1)?;
    let file = std::fs::File::create(dir.join("orders.parquet"))?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, orders.schema(), None)?;
    writer.write(&orders)?;
    writer.close()?;

    let mut csv = String::from("customer_id,name,country_code,segment\n");
    for id in 1..=CUSTOMERS {
        let x = mix(id);
        csv.push_str(&format!(
            "{id},{} {},{},{}\n",
            FIRST[(x % 10) as usize],
            LAST[((x >> 8) % 10) as usize],
            COUNTRIES[((x >> 16) % 8) as usize].0,
            SEGMENTS[((x >> 24) % 3) as usize]
        ));
    }
    std::fs::write(dir.join("customers.csv"), csv)?;

    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("regions")?;
    for (col, title) in ["country_code", "country", "region"].iter().enumerate() {
        sheet.write_string(0, col as u16, *title)?;
    }
    for (row, (code, country, region)) in COUNTRIES.iter().enumerate() {
        let row = row as u32 + 1;
        sheet.write_string(row, 0, *code)?;
        sheet.write_string(row, 1, *country)?;
        sheet.write_string(row, 2, *region)?;
    }
    book.save(dir.join("regions.xlsx"))?;
    Ok(())
}
