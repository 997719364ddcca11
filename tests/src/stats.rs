//! The benchmark's arithmetic: percentiles of measured durations.

use std::time::Duration;

/// The `p`-th percentile (0 to 100) by the nearest-rank method; `None` when empty.
pub fn percentile(samples: &[Duration], p: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

pub fn median(samples: &[Duration]) -> Option<Duration> {
    percentile(samples, 50.0)
}

pub fn p90(samples: &[Duration]) -> Option<Duration> {
    percentile(samples, 90.0)
}

/// Milliseconds with three decimals, for tables and JSON.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_list(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_millis(*v)).collect()
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let samples = ms_list(&[9, 1, 8, 2, 7, 3, 6, 4, 5, 10]);
        assert_eq!(median(&samples), Some(Duration::from_millis(5)));
        assert_eq!(p90(&samples), Some(Duration::from_millis(9)));
        assert_eq!(percentile(&samples, 100.0), Some(Duration::from_millis(10)));
        assert_eq!(percentile(&samples, 0.0), Some(Duration::from_millis(1)));
        assert_eq!(median(&ms_list(&[4])), Some(Duration::from_millis(4)));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn milliseconds_keep_microseconds() {
        assert_eq!(ms(Duration::from_micros(1234)), 1.234);
        assert_eq!(ms(Duration::from_nanos(1_500)), 0.002);
    }
}
