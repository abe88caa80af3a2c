//! A small mutation fuzzer for the parsers that read what users and services send: each target is
//! fed seed inputs changed at random (bytes flipped, inserted, deleted, repeated, spliced with
//! another seed, and tokens that parsers trip on), and must return (an error is fine) without
//! panicking. No nightly toolchain, no new dependency: it runs as a plain test.
//!
//! `FERRY_FUZZ_CASES` sets the cases per target (CI's smoke run uses the default), and
//! `FERRY_FUZZ_SEED` the random seed (a fixed one by default, so that CI is repeatable). An input
//! that panics is written to the temp folder and named in the failure, to become a regression test.

use std::panic::{AssertUnwindSafe, catch_unwind};

/// Cases per target when `FERRY_FUZZ_CASES` is not set.
pub const SMOKE_CASES: usize = 3000;

/// Tokens that parsers of TOML, OData URLs, multipart bodies and spreadsheets trip on.
const TOKENS: &[&str] = &[
    "(",
    ")",
    "'",
    "\"",
    "[",
    "]",
    "{",
    "}",
    "=",
    ",",
    "\n",
    "\r\n",
    "\r\n\r\n",
    "--",
    "\\",
    "${",
    "$${",
    "\u{0}",
    "é",
    "\u{feff}",
    "18446744073709551615",
    "-1",
    "1e999999999",
    "NaN",
    "inf",
    " eq ",
    " and ",
    " or ",
    " not ",
    "$filter=",
    "$orderby=",
    "$top=",
    "$skiptoken=",
    "$select=",
    "contains(",
    "((((((((((((((((",
    "boundary=",
    "Content-Type: multipart/mixed; boundary=b\r\n",
    "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1e20\r\n",
    "[[steps]]",
    "[target]",
    "mode = ",
    "key = ",
    "url = \"",
    "PK\u{3}\u{4}",
    "<row r=\"1048576\">",
    "XFD1048576",
    "\u{7f}",
    "%",
    "%zz",
];

/// xorshift64*: small, fast, and repeatable from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// One seed changed by one to eight random mutations.
pub fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(data.len() + 1);
        match rng.below(7) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 => data.insert(at, rng.next_u64() as u8),
            2 if !data.is_empty() => {
                let len = 1 + rng.below(16.min(data.len()));
                let from = rng.below(data.len() - len + 1);
                data.drain(from..from + len);
            }
            3 if !data.is_empty() => {
                let len = 1 + rng.below(64.min(data.len()));
                let from = rng.below(data.len() - len + 1);
                let chunk = data[from..from + len].to_vec();
                for _ in 0..1 + rng.below(4) {
                    data.splice(at..at, chunk.iter().copied());
                }
            }
            4 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                let to = from + rng.below(other.len() - from + 1);
                data.splice(at..at, other[from..to].iter().copied());
            }
            _ => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                data.splice(at..at, token.iter().copied());
            }
        }
    }
    data
}

/// What a fuzz run did.
#[derive(Debug)]
pub struct Fuzzed {
    pub cases: usize,
    pub seed: u64,
}

/// Feeds `target` with mutations of `seeds` (and the seeds themselves); panics, naming the saved
/// input, if the target panics on one.
pub fn fuzz(name: &str, seeds: &[Vec<u8>], target: impl Fn(&[u8])) -> Fuzzed {
    fuzz_with(name, seeds, SMOKE_CASES, target)
}

/// [`fuzz`] for a slow target: `smoke` cases when `FERRY_FUZZ_CASES` is not set.
pub fn fuzz_with(name: &str, seeds: &[Vec<u8>], smoke: usize, target: impl Fn(&[u8])) -> Fuzzed {
    assert!(!seeds.is_empty(), "{name}: no seeds");
    let cases = std::env::var("FERRY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(smoke);
    let seed = std::env::var("FERRY_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_f055);
    let mut rng = Rng::new(
        seed ^ name
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)),
    );
    let inputs = seeds
        .iter()
        .cloned()
        .chain((0..cases).map(|_| mutate(&mut rng, seeds)));
    for input in inputs {
        if catch_unwind(AssertUnwindSafe(|| target(&input))).is_err() {
            let path = std::env::temp_dir().join(format!("ferry-fuzz-{name}-{seed}.bin"));
            std::fs::write(&path, &input).ok();
            panic!(
                "fuzz target {name} panicked (seed {seed}); the input is in {}: {:?}",
                path.display(),
                String::from_utf8_lossy(&input[..input.len().min(400)])
            );
        }
    }
    eprintln!("fuzz {name}: {cases} cases, seed {seed}, no panic");
    Fuzzed { cases, seed }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fuzzer finds a planted bug: a target that panics on nested parentheses.
    #[test]
    fn a_target_that_panics_fails_the_run() {
        let seeds = vec![b"(a eq 1)".to_vec()];
        let caught = catch_unwind(|| {
            fuzz("planted", &seeds, |input| {
                assert!(!String::from_utf8_lossy(input).contains("(("), "planted");
            })
        });
        assert!(caught.is_err(), "the planted panic was not found");
    }

    #[test]
    fn mutations_are_repeatable_from_the_seed() {
        let seeds = vec![b"name = \"x\"".to_vec()];
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..20)
                .map(|_| mutate(&mut rng, &seeds))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }
}
