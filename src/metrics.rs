//! What shipwatch counts for operators, in Prometheus' text format at `/metrics`: requests by route and status with
//! latency, events accepted and refused, the queue by kind, job outcomes, GitHub calls and the blame cache.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub kind: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    pub step: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub call: String,
    pub outcome: String,
}

type Latency = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms … about 16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

fn step_histogram() -> Histogram {
    // 0.1 ms … about 3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// The queue's state for one kind, read from the store when `/metrics` is asked.
pub struct QueueDepth {
    pub kind: String,
    /// Jobs queued or running.
    pub jobs: i64,
    /// Seconds since the oldest of them was queued.
    pub oldest_age_s: f64,
}

/// Every metric of one process; cheap to clone into the parts that count.
pub struct Metrics {
    registry: Mutex<Registry>,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Latency,
    pub events_accepted: Counter,
    pub events_duplicate: Counter,
    pub events_grouped: Counter,
    pub intake_refused: Family<ReasonLabels, Counter>,
    pub jobs_finished: Family<OutcomeLabels, Counter>,
    pub github_calls: Family<CallLabels, Counter>,
    pub blame_cache_hits: Counter,
    pub blame_cache_misses: Counter,
    assign_step_seconds: Family<StepLabels, Histogram, fn() -> Histogram>,
    assign_git_processes: Counter,
    queue_jobs: Family<KindLabels, Gauge>,
    queue_oldest_seconds: Family<KindLabels, Gauge<f64, AtomicU64>>,
    spool_waiting: Gauge,
    spool_oldest_seconds: Gauge<f64, AtomicU64>,
    /// The blame cache's totals at the last rendering, to advance the counters by the difference.
    blame_seen: Mutex<(u64, u64)>,
}

/// What is read from elsewhere when `/metrics` is asked.
#[derive(Default)]
pub struct Snapshot {
    pub queue: Vec<QueueDepth>,
    /// Blamed lines answered from the cache, and lines that needed git, since the process started.
    pub blame_lines: (u64, u64),
    /// Requests waiting in intake's spool, and the age of the oldest (s).
    pub spool: Option<(i64, f64)>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("shipwatch");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by route and status", requests.clone());
        let request_seconds: Latency = Family::new_with_constructor(latency_histogram);
        registry.register("http_request_duration_seconds", "Time to answer a request", request_seconds.clone());
        let events_accepted = Counter::default();
        registry.register("events_accepted", "Error events stored", events_accepted.clone());
        let events_duplicate = Counter::default();
        registry.register(
            "events_duplicate",
            "Error events already stored (a retried delivery)",
            events_duplicate.clone(),
        );
        let events_grouped = Counter::default();
        registry.register("events_grouped", "Error events filed into their groups", events_grouped.clone());
        let intake_refused = Family::<ReasonLabels, Counter>::default();
        registry.register("intake_refused", "Intake requests refused, by reason", intake_refused.clone());
        let jobs_finished = Family::<OutcomeLabels, Counter>::default();
        registry.register("jobs_finished", "Job runs by kind and outcome", jobs_finished.clone());
        let github_calls = Family::<CallLabels, Counter>::default();
        registry.register("github_calls", "Calls to the GitHub API by call and outcome", github_calls.clone());
        let blame_cache_hits = Counter::default();
        registry.register("blame_cache_hits", "Blamed lines answered from the cache", blame_cache_hits.clone());
        let blame_cache_misses = Counter::default();
        registry.register("blame_cache_misses", "Blamed lines that needed git", blame_cache_misses.clone());
        let assign_step_seconds: Family<StepLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(step_histogram);
        registry.register(
            "assign_step_duration_seconds",
            "Time an assignment spent in each step (read, mirror, blame, write)",
            assign_step_seconds.clone(),
        );
        let assign_git_processes = Counter::default();
        registry.register("assign_git_processes", "git processes started by assignments", assign_git_processes.clone());
        let queue_jobs = Family::<KindLabels, Gauge>::default();
        registry.register("queue_jobs", "Jobs queued or running, by kind", queue_jobs.clone());
        let queue_oldest_seconds = Family::<KindLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "queue_oldest_job_age_seconds",
            "Age of the oldest queued or running job, by kind",
            queue_oldest_seconds.clone(),
        );
        let spool_waiting = Gauge::default();
        registry.register(
            "spool_requests",
            "Accepted requests waiting in the spool for the database",
            spool_waiting.clone(),
        );
        let spool_oldest_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "spool_oldest_age_seconds",
            "Age of the oldest request waiting in the spool",
            spool_oldest_seconds.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            spool_waiting,
            spool_oldest_seconds,
            requests,
            request_seconds,
            events_accepted,
            events_duplicate,
            events_grouped,
            intake_refused,
            jobs_finished,
            github_calls,
            blame_cache_hits,
            blame_cache_misses,
            assign_step_seconds,
            assign_git_processes,
            queue_jobs,
            queue_oldest_seconds,
            blame_seen: Mutex::new((0, 0)),
        }
    }

    /// Counts one answered request.
    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let (method, route) = (method.to_owned(), route.to_owned());
        self.request_seconds
            .get_or_create(&RouteLabels { method: method.clone(), route: route.clone() })
            .observe(seconds);
        self.requests.get_or_create(&RequestLabels { method, route, status }).inc();
    }

    pub fn intake_refused(&self, reason: &str) {
        self.intake_refused.get_or_create(&ReasonLabels { reason: reason.to_owned() }).inc();
    }

    pub fn job_finished(&self, kind: &str, outcome: &str) {
        self.jobs_finished.get_or_create(&OutcomeLabels { kind: kind.to_owned(), outcome: outcome.to_owned() }).inc();
    }

    /// Counts one assignment's steps (milliseconds) and the git processes it started.
    pub fn assignment(&self, steps: &[(&str, f64)], git_processes: u64) {
        for &(step, ms) in steps {
            self.assign_step_seconds.get_or_create(&StepLabels { step: step.to_owned() }).observe(ms / 1000.0);
        }
        self.assign_git_processes.inc_by(git_processes);
    }

    pub fn github_call(&self, call: &str, outcome: &str) {
        self.github_calls.get_or_create(&CallLabels { call: call.to_owned(), outcome: outcome.to_owned() }).inc();
    }

    /// The text exposition, with the queue and the blame cache as `now` says they are.
    ///
    /// # Errors
    /// Never in practice: writing into a `String` does not fail.
    pub fn render(&self, now: &Snapshot) -> Result<String, std::fmt::Error> {
        {
            let mut seen = self.blame_seen.lock().unwrap_or_else(|p| p.into_inner());
            let (hits, misses) = now.blame_lines;
            self.blame_cache_hits.inc_by(hits.saturating_sub(seen.0));
            self.blame_cache_misses.inc_by(misses.saturating_sub(seen.1));
            *seen = (hits.max(seen.0), misses.max(seen.1));
        }
        if let Some((waiting, oldest)) = now.spool {
            self.spool_waiting.set(waiting);
            self.spool_oldest_seconds.set(oldest);
        }
        self.queue_jobs.clear();
        self.queue_oldest_seconds.clear();
        for d in &now.queue {
            let labels = KindLabels { kind: d.kind.clone() };
            self.queue_jobs.get_or_create(&labels).set(d.jobs);
            self.queue_oldest_seconds.get_or_create(&labels).set(d.oldest_age_s);
        }
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        prometheus_client::encoding::text::encode(&mut out, &registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_metric_with_its_labels() {
        let m = Metrics::new();
        m.request("POST", "/api/{project_id}/envelope/", 200, 0.003);
        m.events_accepted.inc();
        m.intake_refused("rate_limited");
        m.job_finished("process_event", "done");
        m.github_call("create_issue", "ok");
        m.assignment(&[("read", 0.4), ("mirror", 0.1), ("blame", 4.0), ("write", 0.9)], 2);
        let queue = vec![QueueDepth { kind: "assign_group".into(), jobs: 4, oldest_age_s: 12.5 }];
        let text = m.render(&Snapshot { queue, blame_lines: (3, 1), spool: Some((2, 1.5)) }).expect("renders");
        for line in [
            r#"shipwatch_http_requests_total{method="POST",route="/api/{project_id}/envelope/",status="200"} 1"#,
            r#"shipwatch_http_request_duration_seconds_count{method="POST",route="/api/{project_id}/envelope/"} 1"#,
            "shipwatch_events_accepted_total 1",
            r#"shipwatch_intake_refused_total{reason="rate_limited"} 1"#,
            r#"shipwatch_jobs_finished_total{kind="process_event",outcome="done"} 1"#,
            r#"shipwatch_github_calls_total{call="create_issue",outcome="ok"} 1"#,
            "shipwatch_blame_cache_hits_total 3",
            r#"shipwatch_assign_step_duration_seconds_count{step="blame"} 1"#,
            r#"shipwatch_assign_step_duration_seconds_bucket{le="0.0064",step="blame"} 1"#,
            r#"shipwatch_assign_step_duration_seconds_bucket{le="0.0032",step="blame"} 0"#,
            "shipwatch_assign_git_processes_total 2",
            r#"shipwatch_queue_jobs{kind="assign_group"} 4"#,
            r#"shipwatch_queue_oldest_job_age_seconds{kind="assign_group"} 12.5"#,
            "shipwatch_spool_requests 2",
            "shipwatch_spool_oldest_age_seconds 1.5",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
        // A kind no longer queued disappears rather than showing its last depth.
        let text = m.render(&Snapshot { queue: Vec::new(), blame_lines: (5, 1), spool: None }).expect("renders");
        assert!(!text.contains("assign_group"), "{text}");
        assert!(text.lines().any(|l| l == "shipwatch_blame_cache_hits_total 5"), "{text}");
    }
}
