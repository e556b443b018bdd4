//! The decode budget's gauges (`worker_kit_decode_budget_in_use_bytes`,
//! `worker_kit_decode_budget_bytes`), read off the budget at each scrape: reserving and
//! giving back memory for a body records nothing, and a process nobody scrapes pays
//! nothing for them.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

/// What the metrics read of the process's decode budget at each scrape. Defined here and
/// implemented by the budget (`handler::budget`), which sits above observe.
pub(crate) trait BudgetSource: Send + Sync + 'static {
    /// Bytes reserved now for bodies being decoded or handled.
    fn in_use(&self) -> usize;
    /// The budget's size (`DECODE_BUDGET_BYTES`).
    fn limit(&self) -> usize;
}

/// The budget reported, once a Runner has one.
#[derive(Clone, Default)]
pub(crate) struct DecodeBudgetGauges(Arc<Mutex<Option<Arc<dyn BudgetSource>>>>);

impl DecodeBudgetGauges {
    /// Reports `budget` from now on, in place of any reported before.
    pub(crate) fn report(&self, budget: Arc<dyn BudgetSource>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(budget);
    }
}

impl std::fmt::Debug for DecodeBudgetGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DecodeBudgetGauges")
    }
}

impl Collector for DecodeBudgetGauges {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(budget) = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            return Ok(());
        };
        for (name, help, bytes) in [
            (
                "worker_kit_decode_budget_in_use_bytes",
                "Memory reserved now for the bodies the process is decoding or handling (above the budget by at most 64 KiB per running handler: small bodies never wait)",
                budget.in_use(),
            ),
            (
                "worker_kit_decode_budget_bytes",
                "The memory the process lets bodies in flight take once decoded (DECODE_BUDGET_BYTES)",
                budget.limit(),
            ),
        ] {
            let gauge = ConstGauge::new(i64::try_from(bytes).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}
