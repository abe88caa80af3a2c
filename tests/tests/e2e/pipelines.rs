//! Every pipeline file the project ships (the quickstart, the examples, the benchmarks' pipelines)
//! is valid: a change to the pipeline checker that breaks one fails here, not in a user's hands.

use ferry::spec::Pipeline;
use ferry_tests::repo_root;

#[test]
fn every_shipped_pipeline_file_is_valid() {
    let mut checked = Vec::new();
    for folder in ["pipelines", "benches/pipelines"] {
        let dir = repo_root().join(folder);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|f| f.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        for file in files {
            // The benchmarks' pipelines take their data folder and port from the environment.
            let text = std::fs::read_to_string(&file)
                .unwrap()
                .replace("${FERRY_BENCH_DATA}", "/tmp/ferry-bench-data")
                .replace("${FERRY_BENCH_PORT}", "8080");
            if let Err(e) = Pipeline::parse(&file, &text) {
                panic!("{} is not valid:\n{e}", file.display());
            }
            checked.push(file);
        }
    }
    assert!(checked.len() >= 8, "{checked:?}");
}
