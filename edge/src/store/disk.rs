//! The disk tier's health: a periodic probe of the cache directory, and the switch that takes
//! the disk out of service when it or foyer's reads fail.
//!
//! Out of service, the store stops reading and writing the disk tier: new objects are kept
//! in memory only, lookups consult memory only, and the edge goes on serving. A disk that
//! failed stays out of service until the edge restarts, since foyer's view of it can no
//! longer be trusted.

use parking_lot::Mutex;
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Name of the probe file written in the cache directory.
const PROBE_FILE: &str = ".strata-disk-probe";

/// Health of the disk tier.
pub struct DiskState {
    dir: PathBuf,
    in_service: AtomicBool,
    reason: Mutex<Option<String>>,
    in_service_gauge: IntGauge,
    errors: IntCounter,
}

/// The disks' metrics, one series per disk directory (`disk` label).
#[derive(Clone)]
pub struct DiskMetrics {
    in_service: IntGaugeVec,
    errors: IntCounterVec,
}

impl DiskMetrics {
    /// Registers `<prefix>_disk_in_service{disk}` and `<prefix>_disk_errors_total{disk}`.
    pub fn register(registry: &Registry, prefix: &str) -> Result<Self, prometheus::Error> {
        let in_service = IntGaugeVec::new(
            Opts::new(
                format!("{prefix}_disk_in_service"),
                "1 while the disk is in service, 0 once taken out",
            ),
            &["disk"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                format!("{prefix}_disk_errors_total"),
                "Failed disk probes and disk-tier read errors",
            ),
            &["disk"],
        )?;
        registry.register(Box::new(in_service.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        Ok(Self { in_service, errors })
    }
}

impl DiskState {
    /// A disk in service at `dir`, reporting to `metrics`.
    pub fn new(dir: PathBuf, metrics: &DiskMetrics) -> Self {
        let label = dir.display().to_string();
        let in_service_gauge = metrics.in_service.with_label_values(&[label.as_str()]);
        let errors = metrics.errors.with_label_values(&[label.as_str()]);
        in_service_gauge.set(1);
        Self {
            dir,
            in_service: AtomicBool::new(true),
            reason: Mutex::new(None),
            in_service_gauge,
            errors,
        }
    }

    /// Whether the disk tier may be used.
    pub fn in_service(&self) -> bool {
        self.in_service.load(Ordering::Relaxed)
    }

    /// Why the disk was taken out of service, once it was.
    pub fn reason(&self) -> Option<String> {
        self.reason.lock().clone()
    }

    /// Records a disk error and takes the disk out of service.
    pub fn failed(&self, why: &str) {
        self.errors.inc();
        // The reason is set before the switch flips, so whoever sees the disk out also sees why.
        let mut reason = self.reason.lock();
        if reason.is_none() {
            *reason = Some(format!("disk {} out of service: {why}", self.dir.display()));
            self.in_service.store(false, Ordering::Relaxed);
            self.in_service_gauge.set(0);
            tracing::error!(dir = %self.dir.display(), why, "disk taken out of service; serving from memory");
        }
    }

    /// Writes, syncs, reads back and removes a small file in the cache directory.
    pub fn probe(&self) -> std::io::Result<()> {
        probe_dir(&self.dir)
    }
}

fn probe_dir(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(PROBE_FILE);
    let payload = b"strata disk probe";
    {
        let mut f = std::fs::File::create(&path)?;
        f.write_all(payload)?;
        f.sync_all()?;
    }
    let mut back = Vec::new();
    std::fs::File::open(&path)?.read_to_end(&mut back)?;
    std::fs::remove_file(&path)?;
    if back != payload {
        return Err(std::io::Error::other("probe file read back different bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn a_vanished_directory_fails_the_probe_and_the_disk_stays_out() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = DiskMetrics::register(&Registry::new(), "strata_edge").unwrap();
        let disk = DiskState::new(dir.path().to_path_buf(), &metrics);
        disk.probe().unwrap();
        assert!(disk.in_service());
        let gone = dir.path().to_path_buf();
        drop(dir);
        let err = disk.probe().unwrap_err();
        disk.failed(&err.to_string());
        assert!(!disk.in_service());
        assert!(disk.reason().unwrap().contains("out of service"));
        std::fs::create_dir_all(&gone).unwrap();
        assert!(disk.probe().is_ok(), "the directory is back");
        assert!(!disk.in_service(), "but the disk stays out until a restart");
        std::fs::remove_dir_all(&gone).unwrap();
    }
}
