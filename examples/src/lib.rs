//! Helpers shared by the example programs in `src/bin`.

/// A small deterministic pseudo-random generator (splitmix64), so every run of an example
/// sees the same data.
///
/// # Examples
///
/// ```
/// let mut seed = 42;
/// let (a, b) = (weir_examples::random(&mut seed), weir_examples::random(&mut seed));
/// assert_ne!(a, b);
/// ```
pub fn random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Resolves on ctrl-c, or SIGTERM on Unix: what the examples that run until stopped wait
/// for before draining their pipeline.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() {
/// weir_examples::shutdown_signal().await;
/// println!("draining");
/// # }
/// ```
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
