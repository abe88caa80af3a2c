//! Throwaway database servers for the tests: a PostgreSQL and a MariaDB (or MySQL) started from the
//! server binaries installed on the machine, each in a temporary folder on a free port, once per test
//! process and shared by its tests. A small watcher process stops the server and deletes its folder
//! as soon as the test process is gone, however it ended (passed, panicked or killed).
//!
//! `FERRY_TEST_PG=postgres://user@host:port` and `FERRY_TEST_MYSQL=mysql://user@host:port` point the
//! tests at existing servers instead (a superuser: each test creates and drops its own database).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where a test server answers.
#[derive(Debug, Clone)]
pub struct TestServer {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The temporary folder of a server the tests started (None for FERRY_TEST_PG/MYSQL).
    pub folder: Option<PathBuf>,
    /// PostgreSQL: the certificate its TLS presents (issued to `localhost`), when openssl was there
    /// to make one.
    pub tls_ca: Option<PathBuf>,
}

/// The PostgreSQL of this test process; started on first use.
pub fn postgres() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        from_env("FERRY_TEST_PG", 5432, "postgres").unwrap_or_else(|| {
            start_postgres().unwrap_or_else(|e| panic!("PostgreSQL test server: {e}"))
        })
    })
}

/// The MariaDB/MySQL of this test process; started on first use.
pub fn mysql() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        from_env("FERRY_TEST_MYSQL", 3306, "root").unwrap_or_else(|| {
            start_mariadb("--local-infile=1", Watch::this_process(MARIADB_STOP))
                .unwrap_or_else(|e| panic!("MariaDB test server: {e}"))
        })
    })
}

/// A MariaDB of the tests' own that refuses `LOAD DATA LOCAL` (`--local-infile=0`, MySQL 8's
/// default), for the fallback to INSERT; started on first use, whatever FERRY_TEST_MYSQL says.
pub fn mysql_without_local_infile() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        start_mariadb("--local-infile=0", Watch::this_process(MARIADB_STOP))
            .unwrap_or_else(|e| panic!("MariaDB test server without local_infile: {e}"))
    })
}

fn from_env(var: &str, default_port: u16, default_user: &str) -> Option<TestServer> {
    let text = std::env::var(var).ok().filter(|v| !v.is_empty())?;
    let url = url::Url::parse(&text).unwrap_or_else(|e| panic!("{var}={text}: {e}"));
    Some(TestServer {
        host: url.host_str().unwrap_or("127.0.0.1").to_string(),
        port: url.port().unwrap_or(default_port),
        user: match url.username() {
            "" => default_user.to_string(),
            u => u.to_string(),
        },
        folder: None,
        tls_ca: std::env::var_os(format!("{var}_CA")).map(PathBuf::from),
    })
}

/// A port nobody listens on now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// (uid, gid) of a system user, from /etc/passwd.
fn system_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name))
            .then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))?
    })
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// The first of `names` found in `dirs` or on PATH.
pub(crate) fn find_binary(names: &[&str], dirs: &[PathBuf]) -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    for name in names {
        for dir in dirs.iter().chain(&path_dirs) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// PostgreSQL's packages keep the server binaries in /usr/lib/postgresql/<version>/bin (Debian,
/// Ubuntu) or /usr/pgsql-<version>/bin (RHEL); newest first.
fn postgres_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for (parent, prefix) in [("/usr/lib/postgresql", ""), ("/usr", "pgsql-")] {
        if let Ok(entries) = std::fs::read_dir(parent) {
            let mut versions: Vec<(u32, PathBuf)> = entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    let version = name.strip_prefix(prefix)?.parse().ok()?;
                    Some((version, e.path().join("bin")))
                })
                .collect();
            versions.sort();
            dirs.extend(versions.into_iter().rev().map(|(_, p)| p));
        }
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        dirs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    dirs
}

/// Runs a command as `user` when the tests run as root (database servers refuse to run as root).
fn command_as(user: Option<&str>, program: &Path) -> Command {
    match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

fn run(mut command: Command, what: &str) -> Result<(), String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A temporary folder for one server, owned by the user it runs as.
pub(crate) fn server_folder(prefix: &str, owner: Option<&str>) -> Result<PathBuf, String> {
    let folder = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| format!("a temporary folder: {e}"))?
        .keep();
    if let Some((uid, gid)) = owner.and_then(system_user) {
        std::os::unix::fs::chown(&folder, Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", folder.display()))?;
    }
    Ok(folder)
}

/// How a watcher stops its server: the signal that shuts it down fast and clean (PostgreSQL,
/// Azurite and moto: INT; MariaDB ignores INT and stops on TERM), once process `parent` is gone.
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    pub stop_signal: &'static str,
    pub parent: u32,
}

impl Watch {
    /// Stopped by `stop_signal` when this test process is gone.
    pub fn this_process(stop_signal: &'static str) -> Watch {
        Watch {
            stop_signal,
            parent: std::process::id(),
        }
    }
}

/// Starts `server_args` in the background under a watcher shell that stops it and deletes
/// `folder` once the watched process is gone.
pub(crate) fn start_watched(
    user: Option<&str>,
    server: &Path,
    server_args: &[String],
    folder: &Path,
    watch: Watch,
) -> Result<(), String> {
    let quoted: Vec<String> = std::iter::once(server.display().to_string())
        .chain(server_args.iter().cloned())
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    let script = format!(
        "{server} >'{dir}/server.log' 2>&1 & pid=$!\n\
         while [ -d /proc/{parent} ] && kill -0 $pid 2>/dev/null; do sleep 1; done\n\
         kill -{signal} $pid 2>/dev/null; wait $pid; rm -rf '{dir}'",
        server = quoted.join(" "),
        dir = folder.display(),
        parent = watch.parent,
        signal = watch.stop_signal,
    );
    let mut watcher = command_as(user, Path::new("/bin/sh"));
    watcher
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    watcher
        .spawn()
        .map_err(|e| format!("starting the server: {e}"))?;
    Ok(())
}

/// The endpoint in `var` when set, else the one `start` returns (`what` names the server when
/// it cannot start).
pub(crate) fn endpoint_or_start(
    var: &str,
    what: &str,
    start: impl FnOnce() -> Result<String, String>,
) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| start().unwrap_or_else(|e| panic!("{what}: {e}")))
}

/// Starts `binary` (one of `names`, or says `missing`) with the arguments `args` gives for a free
/// loopback port and a fresh folder (`prefix`), watched like the databases; returns its
/// `http://127.0.0.1:port` once the port answers.
pub(crate) fn start_http_server(
    names: &[&str],
    missing: &str,
    prefix: &str,
    args: impl FnOnce(u16, &Path) -> Vec<String>,
) -> Result<String, String> {
    let Some(binary) = find_binary(names, &[]) else {
        return Err(missing.to_string());
    };
    let folder = server_folder(prefix, None)?;
    let port = free_port();
    let args = args(port, &folder);
    start_watched(None, &binary, &args, &folder, Watch::this_process("INT"))?;
    wait_until(&folder, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })?;
    Ok(format!("http://127.0.0.1:{port}"))
}

/// Waits until `ready` succeeds, up to 60 seconds; says what the server logged otherwise.
pub(crate) fn wait_until(folder: &Path, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!(
        "did not answer within 60 s; its log:\n{}",
        std::fs::read_to_string(folder.join("server.log")).unwrap_or_default()
    ))
}

fn start_postgres() -> Result<TestServer, String> {
    let dirs = postgres_dirs();
    let (Some(initdb), Some(server), Some(ready)) = (
        find_binary(&["initdb"], &dirs),
        find_binary(&["postgres"], &dirs),
        find_binary(&["pg_isready"], &dirs),
    ) else {
        return Err("initdb and postgres not found: install the PostgreSQL server package (Debian/Ubuntu: postgresql), or set FERRY_TEST_PG=postgres://user@host:port".into());
    };
    let user = running_as_root().then_some("postgres");
    let folder = server_folder("ferry-test-pg-", user)?;
    let data = folder.join("data");
    let mut init = command_as(user, &initdb);
    init.arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
    run(init, "initdb")?;
    let tls_ca = make_certificate(&data, user);
    let port = free_port();
    let mut args: Vec<String> = vec![
        "-D".into(),
        data.display().to_string(),
        "-p".into(),
        port.to_string(),
        "-k".into(),
        folder.display().to_string(),
    ];
    for setting in [
        "listen_addresses=127.0.0.1",
        "fsync=off",
        "synchronous_commit=off",
        "full_page_writes=off",
        "max_connections=300",
    ] {
        args.extend(["-c".into(), setting.into()]);
    }
    if tls_ca.is_some() {
        args.extend(["-c".into(), "ssl=on".into()]);
    }
    start_watched(user, &server, &args, &folder, Watch::this_process("INT"))?;
    wait_until(&folder, || {
        Command::new(&ready)
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    })?;
    Ok(TestServer {
        host: "127.0.0.1".into(),
        port,
        user: "postgres".into(),
        folder: Some(folder),
        tls_ca,
    })
}

/// A self-signed certificate for `localhost` in the data folder (server.crt, server.key), made with
/// openssl when the machine has it; its path, for the TLS tests.
fn make_certificate(data: &Path, user: Option<&str>) -> Option<PathBuf> {
    let openssl = find_binary(&["openssl"], &[])?;
    let mut req = command_as(user, &openssl);
    req.args([
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3",
    ])
    .args([
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost",
    ])
    .arg("-keyout")
    .arg(data.join("server.key"))
    .arg("-out")
    .arg(data.join("server.crt"));
    run(req, "openssl req").ok()?;
    let mut chmod = command_as(user, Path::new("/bin/chmod"));
    chmod.arg("600").arg(data.join("server.key"));
    run(chmod, "chmod").ok()?;
    Some(data.join("server.crt"))
}

/// MariaDB shuts down on TERM (INT is ignored unless it runs under a debugger).
pub const MARIADB_STOP: &str = "TERM";

/// A MariaDB of its own, stopped as `watch` says (for the test of the watcher itself).
pub fn start_mariadb_watched(watch: Watch) -> Result<TestServer, String> {
    start_mariadb("--local-infile=1", watch)
}

/// `local_infile`: `--local-infile=1` (LOAD DATA LOCAL allowed) or `=0`.
fn start_mariadb(local_infile: &str, watch: Watch) -> Result<TestServer, String> {
    let dirs = [PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")];
    let (Some(install), Some(server), Some(client)) = (
        find_binary(&["mariadb-install-db", "mysql_install_db"], &dirs),
        find_binary(&["mariadbd", "mysqld"], &dirs),
        find_binary(&["mariadb", "mysql"], &dirs),
    ) else {
        return Err("mariadb-install-db and mariadbd not found: install the MariaDB server package (Debian/Ubuntu: mariadb-server), or set FERRY_TEST_MYSQL=mysql://user@host:port".into());
    };
    let user = running_as_root().then_some("mysql");
    let folder = server_folder("ferry-test-mariadb-", user)?;
    let data = folder.join("data");
    let socket = folder.join("mysqld.sock");
    let mut init = command_as(user, &install);
    init.arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
    run(init, "mariadb-install-db")?;
    let port = free_port();
    let args: Vec<String> = vec![
        "--no-defaults".into(),
        format!("--datadir={}", data.display()),
        format!("--socket={}", socket.display()),
        format!("--port={port}"),
        "--bind-address=127.0.0.1".into(),
        "--skip-name-resolve".into(),
        local_infile.into(),
        "--max-connections=300".into(),
        "--innodb-buffer-pool-size=256M".into(),
        "--innodb-flush-log-at-trx-commit=0".into(),
        "--skip-log-bin".into(),
    ];
    start_watched(user, &server, &args, &folder, watch)?;
    let sql = |statement: &str| {
        Command::new(&client)
            .arg("--no-defaults")
            .arg(format!("--socket={}", socket.display()))
            .args(["-uroot", "-e", statement])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    wait_until(&folder, || sql("SELECT 1"))?;
    // Over TCP the server sees 127.0.0.1, not localhost: root there too, without a password.
    let grant = "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;";
    if !sql(grant) {
        return Err(format!("could not let root in over TCP ({grant})"));
    }
    Ok(TestServer {
        host: "127.0.0.1".into(),
        port,
        user: "root".into(),
        folder: Some(folder),
        tls_ca: None,
    })
}
