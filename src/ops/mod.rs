//! The operator's commands around a pass: `check` (reach every outside system without
//! collecting) and the metrics a pass leaves for monitoring, in a file and pushed.

pub(crate) mod check;
pub(crate) mod metrics;
pub(crate) mod push;
