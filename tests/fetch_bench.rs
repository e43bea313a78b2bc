//! `strata fetch-bench` against a real edge: every protocol completes requests with whole
//! bodies and reports figures that add up; a target that does not answer is a clean failure.

mod support;

use support::{free_port, pattern, run_strata};

#[test]
fn fetch_bench_measures_h1_h2_and_h3_against_the_edge() {
    let content = tempfile::tempdir().unwrap();
    std::fs::write(content.path().join("seg.m4s"), pattern(400_000, 5)).unwrap();
    let origin = support::start_origin(content.path());
    let tls = support::start_tls_edge(&origin, &[]);
    let edge = &tls.edge;
    for (protocol, url) in [
        ("h1", edge.url("/seg.m4s")),
        ("h2", edge.url("/seg.m4s")),
        ("h3", tls.https("/seg.m4s")),
    ] {
        let (status, out, err) = run_strata(
            &[
                "fetch-bench",
                "--protocol",
                protocol,
                "--duration",
                "2",
                "--connections",
                "2",
                "--streams",
                "2",
                "--insecure",
                "--json",
                &url,
            ],
            &[],
        );
        assert!(status.success(), "{protocol}: {out}{err}");
        let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        let requests = report["requests"].as_u64().unwrap();
        assert!(requests > 0, "{protocol}: {report}");
        assert_eq!(report["errors"], 0, "{protocol}: {report}");
        assert_eq!(
            report["bytes"].as_u64().unwrap(),
            requests * 400_000,
            "{protocol}: whole bodies"
        );
        assert!(report["p50_ms"].as_f64().unwrap() > 0.0, "{protocol}: {report}");
        assert_eq!(report["protocol"], protocol);
    }
    // Nobody listening: a clear failure, not a report of figures.
    let dead = format!("http://127.0.0.1:{}/x", free_port());
    let (status, out, _) = run_strata(&["fetch-bench", "--duration", "1", "--json", &dead], &[]);
    assert!(!status.success());
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["requests"], 0);
    assert!(report["errors"].as_u64().unwrap() > 0);
}
