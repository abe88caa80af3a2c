//! OData v4 services: the target that writes to Dynamics-365-like services (`sink.rs`, with its
//! token source, row encoding, throughput lanes and their pace, and multipart handling). The
//! Dataverse-like emulator it is proven against is its own crate (`emulator/`, ferry-emulator).

mod auth;
pub mod config;
pub mod connector;
pub mod csdl;
pub mod encode;
mod lane;
pub mod multipart;
mod pace;
pub mod sink;

/// A `Retry-After` in seconds as a service sends it (HTTP's delta-seconds; fractions too), or `None`
/// when it is no usable number (negative, NaN, infinite): never more than an hour, so that a broken
/// or hostile answer cannot panic the client or overflow its clock.
pub fn retry_after_secs(text: &str) -> Option<f64> {
    let secs: f64 = text.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| secs.min(3600.0))
}

#[cfg(test)]
mod retry_after_tests {
    #[test]
    fn hostile_retry_after_values_are_refused_or_capped() {
        assert_eq!(super::retry_after_secs("10"), Some(10.0));
        assert_eq!(super::retry_after_secs("9.956"), Some(9.956));
        for bad in ["-1", "NaN", "inf", "-inf", "soon", ""] {
            assert_eq!(super::retry_after_secs(bad), None, "{bad}");
        }
        assert_eq!(super::retry_after_secs("1e20"), Some(3600.0));
        assert_eq!(super::retry_after_secs("1e19"), Some(3600.0));
    }
}
