//! Time to care: how long from the call to the provider's acceptance of its referral, and to
//! the first service (the provider reported the person in progress, or completed), over the
//! consented referrals of the month's incidents. The provider's own time of each report
//! (`at`, docs/closed-loop.md) is the end; the call's receipt time the start.
//!
//! Only the median and the 90th percentile are shown, and only when more than `min_cell`
//! referrals were timed: a statistic of a handful of people could point at one of them. How
//! many were timed is never shown (the funnel counts incidents, and a count of referrals beside
//! it could give back a suppressed count).

use serde::Serialize;

/// One timing as shown. `None`: too few referrals were timed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timing {
    pub id: String,
    pub title: String,
    pub median_hours: Option<f64>,
    pub p90_hours: Option<f64>,
}

/// One referral's times from its call, in hours: to acceptance, to first service.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    pub to_acceptance: Option<f64>,
    pub to_first_service: Option<f64>,
}

/// The nearest-rank percentile `p` (0–100) of sorted `xs`.
fn percentile(xs: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * xs.len() as f64).ceil() as usize;
    xs[rank.clamp(1, xs.len()) - 1]
}

fn timing(id: &str, title: String, mut xs: Vec<f64>, min_cell: u64) -> Timing {
    xs.retain(|x| x.is_finite() && *x >= 0.0);
    xs.sort_by(f64::total_cmp);
    let shown = xs.len() as u64 > min_cell;
    let round = |x: f64| (x * 10.0).round() / 10.0;
    Timing {
        id: id.into(),
        title,
        median_hours: shown.then(|| round(percentile(&xs, 50.0))),
        p90_hours: shown.then(|| round(percentile(&xs, 90.0))),
    }
}

/// The month's two timings from its referrals' samples.
pub fn timings(samples: &[Sample], month: &str, min_cell: u64) -> Vec<Timing> {
    vec![
        timing(
            "call_to_acceptance",
            format!("Hours from the call to the provider's acceptance, {month}"),
            samples.iter().filter_map(|s| s.to_acceptance).collect(),
            min_cell,
        ),
        timing(
            "call_to_first_service",
            format!("Hours from the call to the first service, {month}"),
            samples.iter().filter_map(|s| s.to_first_service).collect(),
            min_cell,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted_after(hours: &[f64]) -> Vec<Sample> {
        hours
            .iter()
            .map(|h| Sample {
                to_acceptance: Some(*h),
                to_first_service: None,
            })
            .collect()
    }

    #[test]
    fn median_and_p90_by_nearest_rank_and_nothing_from_few() {
        let hours: Vec<f64> = (1..=20).map(f64::from).collect();
        let t = timings(&accepted_after(&hours), "2026-10", 10);
        assert_eq!(t[0].median_hours, Some(10.0));
        assert_eq!(t[0].p90_hours, Some(18.0));
        assert_eq!(t[1].median_hours, None, "nothing timed");
        // Ten referrals at min_cell 10: not shown.
        let t = timings(&accepted_after(&hours[..10]), "2026-10", 10);
        assert_eq!((t[0].median_hours, t[0].p90_hours), (None, None));
    }

    #[test]
    fn a_report_before_its_call_is_not_a_time() {
        let mut hours: Vec<f64> = (1..=11).map(f64::from).collect();
        hours.push(-5.0);
        let t = timings(&accepted_after(&hours), "2026-10", 10);
        assert_eq!(t[0].median_hours, Some(6.0));
    }
}
