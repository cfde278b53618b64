//! What a workload printed, as figures: its `key=value` output parsed, what
//! `mote run --stats` said on stderr, and the median and p99 of a set of samples.

use std::collections::BTreeMap;

/// One figure of one run: a number, or a list of samples (`key=1,2,3`).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    One(f64),
    Samples(Vec<f64>),
}

impl Value {
    /// Every number the value holds.
    pub fn numbers(&self) -> &[f64] {
        match self {
            Value::One(v) => std::slice::from_ref(v),
            Value::Samples(v) => v,
        }
    }
}

/// Parses a workload's stdout. Every whitespace-separated `key=value` word whose
/// value is a number or a comma-separated list of numbers is a figure; a line
/// that starts with a plain word (`getpid median_ns=100`) names its figures
/// `word.key`. Anything else is ignored.
pub fn parse(text: &str) -> BTreeMap<String, Value> {
    let mut figures = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace().peekable();
        let prefix = match words.peek() {
            Some(w) if !w.contains('=') => words.next(),
            _ => None,
        };
        for word in words {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            let Some(value) = parse_value(value) else {
                continue;
            };
            let key = match prefix {
                Some(p) => format!("{p}.{key}"),
                None => key.to_string(),
            };
            figures.insert(key, value);
        }
    }
    figures
}

fn parse_value(text: &str) -> Option<Value> {
    if text.contains(',') {
        let samples: Option<Vec<f64>> = text.split(',').map(number).collect();
        return samples.map(Value::Samples);
    }
    number(text).map(Value::One)
}

fn number(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// What `mote run --stats` reported at exit (stderr), as `mote.*` figures: how
/// the system calls arrived (`mote.trapped_calls`, `mote.untrapped_calls`), and
/// the page faults of the application's memory (`mote.page_faults`: kernel-min's
/// count on kvm, Linux's for the application's process on hosted, populating
/// included), kernel calls (kvm) and trap signals (hosted). A line that is not
/// there gives no figure.
pub fn mote_stats(stderr: &str) -> BTreeMap<String, Value> {
    const FIGURES: &[(&str, &str)] = &[
        ("system calls: ", "mote.trapped_calls"),
        (" trapped, ", "mote.untrapped_calls"),
        ("kernel-min: page faults ", "mote.page_faults"),
        ("kernel calls ", "mote.kernel_calls"),
        ("hosted: trap signals ", "mote.trap_signals"),
        (
            "page faults in the application's process ",
            "mote.page_faults",
        ),
    ];
    let mut figures = BTreeMap::new();
    for line in stderr.lines().filter(|l| l.starts_with("mote: ")) {
        for (before, key) in FIGURES {
            let Some(at) = line.find(before) else {
                continue;
            };
            let rest = &line[at + before.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Some(v) = number(&digits) {
                figures.insert(key.to_string(), Value::One(v));
            }
        }
    }
    figures
}

/// Median and 99th percentile (nearest rank) of a set of samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub p99: f64,
    pub n: usize,
}

/// `None` for no samples.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    // Nearest rank: the smallest sample with at least 99% of the samples at or below it.
    let rank = (n * 99).div_ceil(100).max(1);
    Some(Summary {
        median,
        p99: sorted[rank - 1],
        n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_prefixed_and_list_figures() {
        let text = "samples=10000\nmax_min_ratio=1.5 residual=9.6e-11\n\
                    getpid median_ns=104.2 p99_ns=110.5 batch=8192\n\
                    getpid raw_ns=1.5,2,3\n\
                    noise here\nbad=x list=1,y\n";
        let f = parse(text);
        assert_eq!(f.get("samples"), Some(&Value::One(10000.0)));
        assert_eq!(f.get("max_min_ratio"), Some(&Value::One(1.5)));
        assert_eq!(f.get("residual"), Some(&Value::One(9.6e-11)));
        assert_eq!(f.get("getpid.median_ns"), Some(&Value::One(104.2)));
        assert_eq!(
            f.get("getpid.raw_ns"),
            Some(&Value::Samples(vec![1.5, 2.0, 3.0]))
        );
        assert_eq!(f.get("bad"), None);
        assert_eq!(f.get("list"), None);
        assert_eq!(f.len(), 7);
    }

    #[test]
    fn mote_stats_of_either_platform() {
        let kvm = "mote: libos: system calls: 17 trapped, 4021 without a trap (patched sites, \
                   direct entry); 10 sites patched, 7 left trapping\n\
                   mote: kernel-min: page faults 3 (core 0: 3), traps handed up 0, kernel calls 49\n";
        let f = mote_stats(kvm);
        assert_eq!(f.get("mote.trapped_calls"), Some(&Value::One(17.0)));
        assert_eq!(f.get("mote.untrapped_calls"), Some(&Value::One(4021.0)));
        assert_eq!(f.get("mote.page_faults"), Some(&Value::One(3.0)));
        assert_eq!(f.get("mote.kernel_calls"), Some(&Value::One(49.0)));
        assert_eq!(f.len(), 4);
        let hosted = "mote: hosted: trap signals 12 (system calls caught by Syscall User \
                      Dispatch, faults), Linux page faults in the application's process 5120 \
                      (populating included)\nother: page faults 9\n";
        let f = mote_stats(hosted);
        assert_eq!(f.get("mote.trap_signals"), Some(&Value::One(12.0)));
        assert_eq!(f.get("mote.page_faults"), Some(&Value::One(5120.0)));
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn nan_and_infinity_are_not_figures() {
        assert!(parse("a=nan b=inf c=-inf").is_empty());
    }

    #[test]
    fn median_and_p99() {
        assert_eq!(summarize(&[]), None);
        let one = summarize(&[5.0]).unwrap();
        assert_eq!((one.median, one.p99, one.n), (5.0, 5.0, 1));
        let s = summarize(&[3.0, 1.0, 2.0, 4.0]).unwrap();
        assert_eq!((s.median, s.p99), (2.5, 4.0));
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = summarize(&hundred).unwrap();
        assert_eq!((s.median, s.p99), (50.5, 99.0));
        let thousand: Vec<f64> = (1..=1000).rev().map(f64::from).collect();
        assert_eq!(summarize(&thousand).unwrap().p99, 990.0);
    }
}
