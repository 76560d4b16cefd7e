//! `[sampler]` settings and their validation (ranges, the history memory
//! bound, the alert rules).

use std::collections::BTreeSet;

use serde::Deserialize;

use super::alerts::AlertRule;
use super::history::{HistoryStore, MAX_METRICS, history_bound_bytes};

/// Largest history (at [`MAX_METRICS`] metrics) a configuration may ask for.
pub const MAX_HISTORY_BYTES: usize = 256 << 20;

/// `[sampler]` settings.
#[derive(Clone, Debug, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SamplerConfig {
    /// Seconds between samples (1-3600). Default 5.
    pub interval_secs: u64,
    /// Tier 1 keeps every sample this long. Default 3600.
    pub full_resolution_secs: u64,
    /// Tier 2 bucket width (min/avg/max). Default 60.
    pub rollup_secs: u64,
    /// Tier 2 retention. Default 86400.
    pub rollup_retention_secs: u64,
    /// Include the built-in alert rules (see the module docs). Default true.
    pub default_alerts: bool,
    /// Extra alert rules (one with a built-in rule's name replaces it).
    pub alerts: Vec<AlertRule>,
    /// Most processes kept in a snapshot (the busiest by CPU, then memory). Default 4096.
    pub max_processes: usize,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self {
            interval_secs: 5,
            full_resolution_secs: 3600,
            rollup_secs: 60,
            rollup_retention_secs: 86_400,
            default_alerts: true,
            alerts: Vec::new(),
            max_processes: 4096,
        }
    }
}

impl SamplerConfig {
    /// An empty history store sized for this configuration.
    pub(super) fn history_store(&self) -> HistoryStore {
        let secs = [self.interval_secs, self.full_resolution_secs, self.rollup_secs, self.rollup_retention_secs];
        HistoryStore::new(secs, self.full_capacity(), self.rollup_capacity())
    }

    /// Built-in rules (if enabled) with the configured ones laid over them.
    pub(super) fn effective_rules(&self, logical_cores: usize) -> Vec<AlertRule> {
        super::alerts::effective_rules(self.default_alerts, &self.alerts, logical_cores)
    }

    /// Checks ranges, the history memory bound and the alert rules.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=3600).contains(&self.interval_secs) {
            return Err(format!("sampler.interval_secs {} out of range (1-3600)", self.interval_secs));
        }
        if self.full_resolution_secs < self.interval_secs {
            return Err(format!(
                "sampler.full_resolution_secs {} is shorter than interval_secs {}",
                self.full_resolution_secs, self.interval_secs
            ));
        }
        if self.rollup_secs < self.interval_secs {
            return Err(format!(
                "sampler.rollup_secs {} is shorter than interval_secs {}",
                self.rollup_secs, self.interval_secs
            ));
        }
        if self.rollup_retention_secs < self.full_resolution_secs.max(self.rollup_secs) {
            return Err(format!(
                "sampler.rollup_retention_secs {} is shorter than full_resolution_secs or rollup_secs",
                self.rollup_retention_secs
            ));
        }
        let bound = history_bound_bytes(self.full_capacity(), self.rollup_capacity(), MAX_METRICS, 0);
        if bound > MAX_HISTORY_BYTES {
            return Err(format!(
                "sampler history would need up to {} MiB (limit {} MiB): raise interval_secs/rollup_secs or shorten the retentions",
                bound >> 20,
                MAX_HISTORY_BYTES >> 20
            ));
        }
        if !(1..=1_000_000).contains(&self.max_processes) {
            return Err(format!("sampler.max_processes {} out of range (1-1000000)", self.max_processes));
        }
        let mut names = BTreeSet::new();
        for rule in &self.alerts {
            rule.validate()?;
            if !names.insert(rule.name.as_str()) {
                return Err(format!("sampler.alerts: rule name {:?} appears twice", rule.name));
            }
        }
        Ok(())
    }

    pub(super) fn full_capacity(&self) -> usize {
        usize::try_from(self.full_resolution_secs / self.interval_secs.max(1)).unwrap_or(usize::MAX).max(1)
    }

    pub(super) fn rollup_capacity(&self) -> usize {
        usize::try_from(self.rollup_retention_secs / self.rollup_secs.max(1)).unwrap_or(usize::MAX).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::alerts::{Comparator, MAX_FOR_SECS, Severity, rule};
    use super::*;

    #[test]
    fn config_parses_and_validates() {
        let cfg: SamplerConfig = toml::from_str(
            r#"
            interval_secs = 10
            default_alerts = true
            [[alerts]]
            name = "cpu_high"
            metric = "cpu.usage_percent"
            comparator = ">="
            threshold = 75
            [[alerts]]
            name = "rx_flood"
            metric = "net.*.rx_bytes_per_sec"
            comparator = ">"
            threshold = 1e8
            for_secs = 30
            severity = "critical"
            "#,
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.alerts[0].for_secs, 0);
        assert_eq!(cfg.alerts[0].severity, Severity::Warning);
        let rules = cfg.effective_rules(4);
        assert_eq!(rules.len(), 8);
        let cpu = rules.iter().find(|r| r.name == "cpu_high").unwrap();
        assert_eq!((cpu.comparator, cpu.threshold), (Comparator::Ge, 75.0));
        assert_eq!(rules.iter().find(|r| r.name == "load_high").unwrap().threshold, 8.0);
        assert!(rules[7].matches("net.eth0.rx_bytes_per_sec") && !rules[7].matches("net..rx_bytes_per_sec"));

        assert!(toml::from_str::<SamplerConfig>("intervall_secs = 5").is_err());
        assert!(
            toml::from_str::<SamplerConfig>("[[alerts]]\nname='a'\nmetric='x'\ncomparator='=='\nthreshold=1").is_err()
        );
        SamplerConfig::default().validate().unwrap();
        assert!(SamplerConfig { default_alerts: false, ..SamplerConfig::default() }.effective_rules(2).is_empty());

        let bad = |c: SamplerConfig| assert!(c.validate().is_err(), "{c:?}");
        let d = SamplerConfig::default;
        bad(SamplerConfig { interval_secs: 0, ..d() });
        bad(SamplerConfig { interval_secs: 3601, ..d() });
        bad(SamplerConfig { full_resolution_secs: 1, ..d() });
        bad(SamplerConfig { rollup_secs: 1, ..d() });
        bad(SamplerConfig { rollup_retention_secs: 60, ..d() });
        bad(SamplerConfig {
            interval_secs: 1,
            full_resolution_secs: 30 * 86_400,
            rollup_retention_secs: 30 * 86_400,
            ..d()
        });
        bad(SamplerConfig { max_processes: 0, ..d() });
        let with = |r: AlertRule| SamplerConfig { alerts: vec![r], ..d() };
        bad(with(rule("", "x", Comparator::Gt, 1.0, 0)));
        bad(with(rule("a b", "x", Comparator::Gt, 1.0, 0)));
        bad(with(rule("a", "disk.*.*", Comparator::Gt, 1.0, 0)));
        bad(with(rule("a", "disk.x*.used", Comparator::Gt, 1.0, 0)));
        bad(with(rule("a", "x", Comparator::Gt, f64::NAN, 0)));
        bad(with(rule("a", "x", Comparator::Gt, 1.0, MAX_FOR_SECS + 1)));
        bad(SamplerConfig {
            alerts: vec![rule("a", "x", Comparator::Gt, 1.0, 0), rule("a", "y", Comparator::Gt, 1.0, 0)],
            ..d()
        });
        with(rule("a", "*.used_percent", Comparator::Gt, 1.0, 0)).validate().unwrap();
    }
}
