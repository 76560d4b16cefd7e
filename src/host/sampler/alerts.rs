//! Alert rules, their built-in defaults, and the engine that evaluates them
//! on every sample (pending → firing → resolved; see the module docs of
//! [`super`] for the state machine and the built-in table).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::rfc3339;

/// Most resolved alerts kept in [`AlertsView::recently_resolved`].
pub const MAX_RESOLVED_ALERTS: usize = 100;
/// Longest `for_secs` of an alert rule (7 days).
pub const MAX_FOR_SECS: u64 = 7 * 86_400;

// ---------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------

/// One alert rule.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// Unique rule name (letters, digits, `_`, `-`, `.`).
    pub name: String,
    /// Metric name as in `metrics_history`; may hold one `*` segment, e.g. `disk.*.used_percent`.
    /// `*` matches any non-empty text, dots and slashes included (mount points hold them).
    pub metric: String,
    /// How the value is compared with the threshold.
    pub comparator: Comparator,
    /// Threshold the value is compared with.
    pub threshold: f64,
    /// Seconds the condition must hold before the alert fires (0 = at once).
    #[serde(default)]
    pub for_secs: u64,
    /// Severity of the alert.
    #[serde(default)]
    pub severity: Severity,
}

/// Comparison of a metric's value with a rule's threshold.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
pub enum Comparator {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
}

impl Comparator {
    pub(super) fn holds(self, value: f64, threshold: f64) -> bool {
        // NaN compares false with everything: a missing value never alerts.
        match self {
            Comparator::Gt => value > threshold,
            Comparator::Ge => value >= threshold,
            Comparator::Lt => value < threshold,
            Comparator::Le => value <= threshold,
        }
    }
}

/// Alert severity.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    #[default]
    Warning,
    Critical,
}

impl AlertRule {
    pub(super) fn validate(&self) -> Result<(), String> {
        let valid_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if self.name.is_empty() || self.name.len() > 64 || !self.name.chars().all(valid_name) {
            return Err(format!("alert rule name {:?}: use 1-64 letters, digits, '_', '-' or '.'", self.name));
        }
        if self.metric.is_empty() || self.metric.len() > 512 || self.metric.chars().any(char::is_control) {
            return Err(format!(
                "alert rule {}: metric {:?} is empty, too long or has control characters",
                self.name, self.metric
            ));
        }
        let stars = self.metric.matches('*').count();
        if stars > 1 {
            return Err(format!("alert rule {}: metric {:?} has more than one '*'", self.name, self.metric));
        }
        if let Some(pos) = self.metric.find('*') {
            let before_ok = pos == 0 || self.metric[..pos].ends_with('.');
            let after_ok = pos + 1 == self.metric.len() || self.metric[pos + 1..].starts_with('.');
            if !before_ok || !after_ok {
                return Err(format!(
                    "alert rule {}: '*' in {:?} must be a whole segment, as in disk.*.used_percent",
                    self.name, self.metric
                ));
            }
        }
        if !self.threshold.is_finite() {
            return Err(format!("alert rule {}: threshold must be a finite number", self.name));
        }
        if self.for_secs > MAX_FOR_SECS {
            return Err(format!("alert rule {}: for_secs {} over {MAX_FOR_SECS}", self.name, self.for_secs));
        }
        Ok(())
    }

    /// The concrete metrics of `values` this rule applies to.
    pub(super) fn matches(&self, metric: &str) -> bool {
        match self.metric.split_once('*') {
            None => self.metric == metric,
            Some((prefix, suffix)) => {
                metric.len() > prefix.len() + suffix.len() && metric.starts_with(prefix) && metric.ends_with(suffix)
            }
        }
    }
}

/// The built-in rules (see the module docs); `load_high`'s threshold is
/// 2 × `logical_cores`.
pub fn default_rules(logical_cores: usize) -> Vec<AlertRule> {
    let rule = |name: &str, metric: &str, threshold: f64, for_secs: u64, severity: Severity| AlertRule {
        name: name.to_owned(),
        metric: metric.to_owned(),
        comparator: Comparator::Gt,
        threshold,
        for_secs,
        severity,
    };
    let cores = u32::try_from(logical_cores.max(1)).unwrap_or(u32::MAX);
    vec![
        rule("cpu_high", "cpu.usage_percent", 90.0, 300, Severity::Warning),
        rule("memory_high", "memory.used_percent", 90.0, 300, Severity::Warning),
        rule("swap_high", "swap.used_percent", 80.0, 300, Severity::Warning),
        rule("disk_full", "disk.*.used_percent", 90.0, 0, Severity::Critical),
        rule("load_high", "load.5", 2.0 * f64::from(cores), 600, Severity::Warning),
        rule("memory_pressure", "psi.memory.some.avg10", 20.0, 120, Severity::Warning),
        rule("io_pressure", "psi.io.some.avg10", 30.0, 120, Severity::Warning),
    ]
}

/// Built-in rules (if enabled) with configured ones replacing same-named
/// built-ins, then the other configured rules in order.
pub(super) fn effective_rules(default_alerts: bool, configured: &[AlertRule], logical_cores: usize) -> Vec<AlertRule> {
    let mut rules = if default_alerts { default_rules(logical_cores) } else { Vec::new() };
    for extra in configured {
        match rules.iter_mut().find(|r| r.name == extra.name) {
            Some(slot) => *slot = extra.clone(),
            None => rules.push(extra.clone()),
        }
    }
    rules
}

// ---------------------------------------------------------------------------
// Views and events
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct AlertsView {
    pub firing: Vec<Alert>,
    pub pending: Vec<Alert>,
    /// Newest first, at most 100.
    pub recently_resolved: Vec<Alert>,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Alert {
    pub rule: String,
    /// Concrete metric (wildcard expanded).
    pub metric: String,
    pub severity: Severity,
    pub state: AlertState,
    /// Latest value seen (the value at resolution for resolved alerts).
    pub value: f64,
    pub threshold: f64,
    pub comparator: Comparator,
    pub pending_since: String,
    pub fired_at: Option<String>,
    pub resolved_at: Option<String>,
}

#[derive(Clone, Copy, Debug, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Pending,
    Firing,
    Resolved,
}

/// An alert state change.
#[derive(Clone, Debug, Serialize)]
pub struct AlertEvent {
    pub alert: Alert,
    pub previous: Option<AlertState>,
}

// ---------------------------------------------------------------------------
// Engine
// ---------------------------------------------------------------------------

struct Active {
    alert: Alert,
    since: f64,
}

pub(super) struct AlertEngine {
    rules: Vec<AlertRule>,
    /// (rule, concrete metric) → pending or firing alert.
    active: BTreeMap<(String, String), Active>,
    /// Newest first.
    resolved: VecDeque<Alert>,
}

impl AlertEngine {
    pub(super) fn new(rules: Vec<AlertRule>) -> Self {
        AlertEngine { rules, active: BTreeMap::new(), resolved: VecDeque::new() }
    }

    /// Evaluates every rule against `values` at time `now` (Unix seconds).
    pub(super) fn evaluate(&mut self, now: f64, values: &BTreeMap<String, f64>) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        let mut seen = BTreeSet::new();
        for rule in &self.rules {
            let matching: Vec<(&String, f64)> = if rule.metric.contains('*') {
                values.iter().filter(|(m, _)| rule.matches(m)).map(|(m, v)| (m, *v)).collect()
            } else {
                values.get_key_value(&rule.metric).map(|(m, v)| (m, *v)).into_iter().collect()
            };
            for (metric, value) in matching {
                let key = (rule.name.clone(), metric.clone());
                seen.insert(key.clone());
                if rule.comparator.holds(value, rule.threshold) {
                    let entry = self.active.entry(key).or_insert_with(|| {
                        let alert = Alert {
                            rule: rule.name.clone(),
                            metric: metric.clone(),
                            severity: rule.severity,
                            state: AlertState::Pending,
                            value,
                            threshold: rule.threshold,
                            comparator: rule.comparator,
                            pending_since: rfc3339(now),
                            fired_at: None,
                            resolved_at: None,
                        };
                        events.push(AlertEvent { alert: alert.clone(), previous: None });
                        Active { alert, since: now }
                    });
                    entry.alert.value = value;
                    if entry.alert.state == AlertState::Pending && now - entry.since >= rule.for_secs as f64 {
                        entry.alert.state = AlertState::Firing;
                        entry.alert.fired_at = Some(rfc3339(now));
                        events.push(AlertEvent { alert: entry.alert.clone(), previous: Some(AlertState::Pending) });
                    }
                } else if let Some(a) = self.active.get_mut(&key) {
                    a.alert.value = value;
                    Self::clear(&mut self.active, &mut self.resolved, &key, now, &mut events);
                }
            }
        }
        // A metric that vanished (unmounted disk, removed interface) clears its alerts.
        let gone: Vec<(String, String)> = self.active.keys().filter(|k| !seen.contains(*k)).cloned().collect();
        for key in gone {
            Self::clear(&mut self.active, &mut self.resolved, &key, now, &mut events);
        }
        events
    }

    /// The rules being evaluated.
    pub(super) fn rules(&self) -> &[AlertRule] {
        &self.rules
    }

    /// Replaces the rules (a configuration reload). Alerts of a rule kept
    /// unchanged (same name and definition) keep their state and timers; a
    /// rule removed or changed clears its alerts as if its condition ended
    /// (firing → resolved, with an event; pending → dropped), and a changed
    /// rule starts over from its new definition on the next sample.
    pub(super) fn replace_rules(&mut self, rules: Vec<AlertRule>, now: f64) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        let stale: Vec<(String, String)> = self
            .active
            .keys()
            .filter(|(name, _)| {
                let old = self.rules.iter().find(|r| &r.name == name);
                let new = rules.iter().find(|r| &r.name == name);
                old.is_none() || old != new
            })
            .cloned()
            .collect();
        for key in stale {
            Self::clear(&mut self.active, &mut self.resolved, &key, now, &mut events);
        }
        self.rules = rules;
        events
    }

    /// Condition no longer holds: pending → dropped silently, firing → resolved.
    fn clear(
        active: &mut BTreeMap<(String, String), Active>,
        resolved: &mut VecDeque<Alert>,
        key: &(String, String),
        now: f64,
        events: &mut Vec<AlertEvent>,
    ) {
        let Some(a) = active.remove(key) else { return };
        if a.alert.state != AlertState::Firing {
            return;
        }
        let mut alert = a.alert;
        alert.state = AlertState::Resolved;
        alert.resolved_at = Some(rfc3339(now));
        events.push(AlertEvent { alert: alert.clone(), previous: Some(AlertState::Firing) });
        resolved.push_front(alert);
        resolved.truncate(MAX_RESOLVED_ALERTS);
    }

    pub(super) fn view(&self) -> AlertsView {
        let by_state = |s: AlertState| -> Vec<Alert> {
            self.active.values().filter(|a| a.alert.state == s).map(|a| a.alert.clone()).collect()
        };
        AlertsView {
            firing: by_state(AlertState::Firing),
            pending: by_state(AlertState::Pending),
            recently_resolved: self.resolved.iter().cloned().collect(),
        }
    }
}

/// A rule for tests: `severity` warning.
#[cfg(test)]
pub(super) fn rule(name: &str, metric: &str, cmp: Comparator, threshold: f64, for_secs: u64) -> AlertRule {
    AlertRule {
        name: name.into(),
        metric: metric.into(),
        comparator: cmp,
        threshold,
        for_secs,
        severity: Severity::Warning,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- alert engine on synthetic values ----

    fn m(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn replacing_rules_keeps_unchanged_alerts_and_resolves_the_others() {
        let keep = rule("keep", "a", Comparator::Gt, 1.0, 0);
        let change = rule("change", "b", Comparator::Gt, 1.0, 0);
        let drop = rule("drop", "c", Comparator::Gt, 1.0, 0);
        let pend = rule("pend", "d", Comparator::Gt, 1.0, 600);
        let mut e = AlertEngine::new(vec![keep.clone(), change.clone(), drop, pend]);
        let vals = m(&[("a", 5.0), ("b", 5.0), ("c", 5.0), ("d", 5.0)]);
        e.evaluate(100.0, &vals);
        let v = e.view();
        assert_eq!((v.firing.len(), v.pending.len()), (3, 1));
        let changed = AlertRule { threshold: 2.0, ..change };
        let ev = e.replace_rules(vec![keep, changed], 110.0);
        // drop and change resolve (firing), pend vanishes silently.
        let mut resolved: Vec<&str> = ev.iter().map(|x| x.alert.rule.as_str()).collect();
        resolved.sort();
        assert_eq!(resolved, ["change", "drop"]);
        assert!(ev.iter().all(|x| x.alert.state == AlertState::Resolved && x.previous == Some(AlertState::Firing)));
        let v = e.view();
        assert_eq!(v.firing.iter().map(|a| a.rule.as_str()).collect::<Vec<_>>(), ["keep"]);
        assert_eq!(v.firing[0].fired_at.as_deref(), Some(rfc3339(100.0).as_str()), "kept alert keeps its time");
        assert!(v.pending.is_empty());
        assert_eq!(e.rules().len(), 2);
        // The changed rule starts over under its new definition.
        let ev = e.evaluate(120.0, &vals);
        assert!(ev.iter().any(|x| x.alert.rule == "change" && x.alert.threshold == 2.0), "{ev:?}");
    }

    #[test]
    fn alert_pending_firing_resolved() {
        let mut e = AlertEngine::new(vec![rule("cpu", "cpu.usage_percent", Comparator::Gt, 90.0, 300)]);
        let ev = e.evaluate(1000.0, &m(&[("cpu.usage_percent", 95.0)]));
        assert_eq!(ev.len(), 1);
        assert_eq!((ev[0].alert.state, ev[0].previous), (AlertState::Pending, None));
        assert_eq!(e.view().pending.len(), 1);

        assert!(e.evaluate(1200.0, &m(&[("cpu.usage_percent", 99.0)])).is_empty());
        assert_eq!(e.view().pending[0].value, 99.0);

        let ev = e.evaluate(1300.0, &m(&[("cpu.usage_percent", 96.0)]));
        assert_eq!(ev.len(), 1);
        assert_eq!((ev[0].alert.state, ev[0].previous), (AlertState::Firing, Some(AlertState::Pending)));
        assert!(ev[0].alert.fired_at.is_some());
        let v = e.view();
        assert_eq!((v.firing.len(), v.pending.len()), (1, 0));

        assert!(e.evaluate(1305.0, &m(&[("cpu.usage_percent", 91.0)])).is_empty());
        let ev = e.evaluate(1310.0, &m(&[("cpu.usage_percent", 50.0)]));
        assert_eq!(ev.len(), 1);
        assert_eq!((ev[0].alert.state, ev[0].previous), (AlertState::Resolved, Some(AlertState::Firing)));
        assert_eq!(ev[0].alert.value, 50.0);
        let v = e.view();
        assert_eq!((v.firing.len(), v.pending.len(), v.recently_resolved.len()), (0, 0, 1));
        assert!(v.recently_resolved[0].resolved_at.is_some());
        assert_eq!(v.recently_resolved[0].pending_since, rfc3339(1000.0));
    }

    #[test]
    fn alert_dropped_silently_while_pending() {
        let mut e = AlertEngine::new(vec![rule("mem", "memory.used_percent", Comparator::Ge, 90.0, 60)]);
        assert_eq!(e.evaluate(0.0, &m(&[("memory.used_percent", 90.0)])).len(), 1);
        assert!(e.evaluate(30.0, &m(&[("memory.used_percent", 89.9)])).is_empty());
        let v = e.view();
        assert!(v.pending.is_empty() && v.firing.is_empty() && v.recently_resolved.is_empty());
        // Pending again restarts the clock.
        e.evaluate(40.0, &m(&[("memory.used_percent", 95.0)]));
        assert!(e.evaluate(90.0, &m(&[("memory.used_percent", 95.0)])).is_empty());
        assert_eq!(e.evaluate(100.0, &m(&[("memory.used_percent", 95.0)])).len(), 1);
    }

    #[test]
    fn alert_for_zero_fires_at_once_and_wildcard_expands() {
        let mut e = AlertEngine::new(default_rules(2));
        let values = m(&[
            ("disk./.used_percent", 95.0),
            ("disk./var.used_percent", 50.0),
            ("disk./mnt/data.x.used_percent", 99.0),
            ("disk./.read_bytes_per_sec", 1e9),
        ]);
        let ev = e.evaluate(10.0, &values);
        // pending + firing for each of the two full mounts.
        assert_eq!(ev.len(), 4);
        let v = e.view();
        let mut metrics: Vec<&str> = v.firing.iter().map(|a| a.metric.as_str()).collect();
        metrics.sort_unstable();
        assert_eq!(metrics, ["disk./.used_percent", "disk./mnt/data.x.used_percent"]);
        assert!(v.firing.iter().all(|a| a.rule == "disk_full" && a.severity == Severity::Critical));

        // A mount that disappears while firing resolves.
        let ev = e.evaluate(20.0, &m(&[("disk./.used_percent", 95.0)]));
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].alert.metric, "disk./mnt/data.x.used_percent");
        assert_eq!(ev[0].alert.state, AlertState::Resolved);
    }

    #[test]
    fn resolved_list_is_bounded_newest_first() {
        let mut e = AlertEngine::new(vec![rule("lo", "x", Comparator::Lt, 0.0, 0)]);
        for i in 0..150 {
            let t = f64::from(i) * 10.0;
            e.evaluate(t, &m(&[("x", -1.0)]));
            e.evaluate(t + 1.0, &m(&[("x", 1.0)]));
        }
        let v = e.view();
        assert_eq!(v.recently_resolved.len(), MAX_RESOLVED_ALERTS);
        assert_eq!(v.recently_resolved[0].resolved_at.as_deref(), Some(rfc3339(1491.0).as_str()));
    }

    #[test]
    fn comparators_and_nan() {
        assert!(Comparator::Gt.holds(2.0, 1.0) && !Comparator::Gt.holds(1.0, 1.0));
        assert!(Comparator::Ge.holds(1.0, 1.0) && !Comparator::Ge.holds(0.5, 1.0));
        assert!(Comparator::Lt.holds(0.5, 1.0) && !Comparator::Lt.holds(1.0, 1.0));
        assert!(Comparator::Le.holds(1.0, 1.0) && !Comparator::Le.holds(1.5, 1.0));
        assert!(!Comparator::Gt.holds(f64::NAN, 1.0) && !Comparator::Le.holds(f64::NAN, 1.0));
    }
}
