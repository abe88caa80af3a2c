//! Throwaway databases on real PostgreSQL and MariaDB servers (the ones `servers.rs` starts for this
//! test process, or those FERRY_TEST_PG / FERRY_TEST_MYSQL name): one per test, with a unique name,
//! dropped when the test ends (even when it fails), and readers that bring rows back as sorted text.

use mysql_async::prelude::Queryable;

/// Which server a test database lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Postgres,
    Mysql,
}

/// A database created for one test.
pub struct TestDb {
    pub server: Server,
    pub name: String,
}

use crate::servers::{self, TestServer};

/// libpq's key=value form for database `db` of the test PostgreSQL.
fn pg_params(db: &str) -> String {
    let s = servers::postgres();
    format!(
        "host={} port={} user={} dbname={db}",
        s.host, s.port, s.user
    )
}

/// The test MariaDB's URL, for database `db` ("" for none).
fn my_url(db: &str) -> String {
    let s = servers::mysql();
    format!("mysql://{}@{}:{}/{db}", s.user, s.host, s.port)
}

impl Server {
    /// The server itself: where it answers, and its folder when the tests started it.
    pub fn info(self) -> &'static TestServer {
        match self {
            Server::Postgres => servers::postgres(),
            Server::Mysql => servers::mysql(),
        }
    }
}

impl TestDb {
    pub async fn new(server: Server) -> Self {
        let name = format!(
            "ferry_t_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        match server {
            Server::Postgres => pg_admin(&format!("CREATE DATABASE {name}")).await,
            Server::Mysql => {
                my_admin(&format!("CREATE DATABASE {name} CHARACTER SET utf8mb4")).await
            }
        }
        Self { server, name }
    }

    /// The URL a pipeline's connection uses.
    pub fn url(&self) -> String {
        let s = self.server.info();
        match self.server {
            Server::Postgres => {
                format!("postgres://{}@{}:{}/{}", s.user, s.host, s.port, self.name)
            }
            Server::Mysql => format!("mysql://{}@{}:{}/{}", s.user, s.host, s.port, self.name),
        }
    }

    /// Runs statements (separated by `;` inside one string is fine for both servers).
    pub async fn exec(&self, sql: &str) {
        match self.server {
            Server::Postgres => {
                let client = pg_connect(&self.name).await;
                client
                    .batch_execute(sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
            }
            Server::Mysql => {
                let mut conn = my_connect(&self.name).await;
                conn.query_drop(sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                conn.disconnect().await.ok();
            }
        }
    }

    /// The rows of a query as text, sorted; NULL as "NULL".
    pub async fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        let mut out: Vec<Vec<String>> = match self.server {
            Server::Postgres => {
                let client = pg_connect(&self.name).await;
                client
                    .simple_query(sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
                    .into_iter()
                    .filter_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                            (0..r.len())
                                .map(|i| r.get(i).unwrap_or("NULL").to_string())
                                .collect(),
                        ),
                        _ => None,
                    })
                    .collect()
            }
            Server::Mysql => {
                let mut conn = my_connect(&self.name).await;
                let rows: Vec<mysql_async::Row> = conn
                    .query(sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                conn.disconnect().await.ok();
                rows.into_iter()
                    .map(|r| {
                        r.unwrap()
                            .into_iter()
                            .map(|v| match v {
                                mysql_async::Value::NULL => "NULL".to_string(),
                                mysql_async::Value::Bytes(b) => {
                                    String::from_utf8_lossy(&b).into_owned()
                                }
                                other => other.as_sql(true).trim_matches('\'').to_string(),
                            })
                            .collect()
                    })
                    .collect()
            }
        };
        out.sort();
        out
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (server, name) = (self.server, self.name.clone());
        // Drop runs outside any runtime's async context: a small runtime of its own does the work.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                match server {
                    Server::Postgres => {
                        pg_admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await
                    }
                    Server::Mysql => my_admin(&format!("DROP DATABASE IF EXISTS {name}")).await,
                }
            })
        })
        .join();
    }
}

async fn pg_connect(db: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&pg_params(db), tokio_postgres::NoTls)
        .await
        .expect("the test PostgreSQL answers");
    tokio::spawn(conn);
    client
}

async fn my_connect(db: &str) -> mysql_async::Conn {
    mysql_async::Conn::from_url(my_url(db))
        .await
        .expect("the test MariaDB answers")
}

/// Runs one statement as the PostgreSQL superuser in the `postgres` database.
pub async fn pg_admin(sql: &str) {
    let (client, conn) = tokio_postgres::connect(&pg_params("postgres"), tokio_postgres::NoTls)
        .await
        .expect("the test PostgreSQL answers");
    tokio::spawn(conn);
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
}

/// Runs one statement as MariaDB's root.
pub async fn my_admin(sql: &str) {
    let mut conn = mysql_async::Conn::from_url(my_url(""))
        .await
        .expect("the test MariaDB answers");
    conn.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.disconnect().await.ok();
}

/// Cuts every connection Ferry has open to database `db`, as a server restart would; returns how many.
pub async fn pg_kill_connections(db: &str) -> usize {
    let (client, conn) = tokio_postgres::connect(&pg_params("postgres"), tokio_postgres::NoTls)
        .await
        .expect("the test PostgreSQL answers");
    tokio::spawn(conn);
    client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'ferry'",
            &[&db],
        )
        .await
        .map(|rows| rows.len())
        .unwrap_or(0)
}

/// Cuts every connection to database `db` but this one; returns how many.
pub async fn my_kill_connections(db: &str) -> usize {
    let mut conn = mysql_async::Conn::from_url(my_url(""))
        .await
        .expect("the test MariaDB answers");
    let ids: Vec<u64> = conn
        .exec(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
            (db,),
        )
        .await
        .unwrap_or_default();
    let mut killed = 0;
    for id in ids {
        if conn.query_drop(format!("KILL {id}")).await.is_ok() {
            killed += 1;
        }
    }
    conn.disconnect().await.ok();
    killed
}
