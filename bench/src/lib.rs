//! Strata's load tools. Today: `fetch`, a protocol-level fetch benchmark (HTTP/1.1, HTTP/2,
//! HTTP/3) behind `strata fetch-bench`. The player-model load generator (`strata loadgen`,
//! with ABR, buffers and QoE) is the load-generator issue's and is not built yet.

pub mod fetch;
