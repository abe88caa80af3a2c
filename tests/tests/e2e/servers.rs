//! The tests' throwaway servers go when the test process that started them goes: a server left
//! running keeps its memory (MariaDB's buffer pool) and its port after every test run.

use std::time::{Duration, Instant};

use ferry_tests::servers::{MARIADB_STOP, Watch, start_mariadb_watched};

#[test]
fn a_throwaway_mariadb_stops_and_its_folder_goes_when_its_process_is_gone() {
    // A stand-in for the test process, ended once the server is up.
    let mut stand_in = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    let server = start_mariadb_watched(Watch {
        stop_signal: MARIADB_STOP,
        parent: stand_in.id(),
    })
    .unwrap();
    let folder = server.folder.clone().unwrap();
    let address = format!("{}:{}", server.host, server.port);
    assert!(std::net::TcpStream::connect(&address).is_ok(), "it is up");
    stand_in.kill().unwrap();
    stand_in.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while folder.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !folder.exists(),
        "the server's folder {} is still there a minute after its process ended",
        folder.display()
    );
    assert!(
        std::net::TcpStream::connect(&address).is_err(),
        "the server still answers on {address}"
    );
}
