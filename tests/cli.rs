//! The `strata` command line: help, the documented default config, and config errors that
//! name the file, the field and what is wrong.

mod support;

use support::run_strata;

#[test]
fn help_lists_the_roles_and_the_trial_flags() {
    let (status, out, _) = run_strata(&["--help"], &[]);
    assert!(status.success());
    for role in [
        "origin",
        "edge",
        "midtier",
        "sample-content",
        "demo",
        "loadgen",
        "fetch-bench",
    ] {
        assert!(out.contains(role), "{role} missing from:\n{out}");
    }
    let (status, out, _) = run_strata(&["origin", "--help"], &[]);
    assert!(status.success());
    for flag in [
        "--config",
        "--print-default-config",
        "--listen",
        "--root",
        "--s3-bucket",
        "--admin-listen",
    ] {
        assert!(out.contains(flag), "{flag} missing from:\n{out}");
    }
}

#[test]
fn the_printed_default_config_is_valid_and_checkable() {
    let (status, text, _) = run_strata(&["origin", "--print-default-config"], &[]);
    assert!(status.success());
    assert!(text.contains("version = 1"));
    assert!(
        text.lines().filter(|l| l.trim_start().starts_with('#')).count() > 20,
        "documented"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("origin.toml");
    let root = dir.path().join("content");
    std::fs::create_dir(&root).unwrap();
    let text = text.replace("/var/lib/strata/content", root.to_str().unwrap());
    std::fs::write(&file, text).unwrap();
    let (status, out, err) = run_strata(
        &["origin", "--config", file.to_str().unwrap(), "--check-config"],
        &[],
    );
    assert!(status.success(), "{out}{err}");
    assert!(out.contains("ok"));
}

fn config_error(toml: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, toml).unwrap();
    let (status, _, err) = run_strata(
        &["origin", "--config", file.to_str().unwrap(), "--check-config"],
        &[],
    );
    assert!(err.contains(file.to_str().unwrap()), "names the file: {err}");
    (status.code().unwrap(), err)
}

#[test]
fn bad_values_name_file_field_and_reason() {
    let (code, err) = config_error("listen = \"not an address\"\n");
    assert_eq!(code, 2);
    assert!(
        err.contains("field `listen`") && err.contains("socket address"),
        "{err}"
    );

    let (code, err) = config_error("[storage]\nbackend = \"ftp\"\n");
    assert_eq!(code, 2);
    assert!(
        err.contains("field `storage.backend`") && err.contains("ftp"),
        "{err}"
    );

    let (code, err) = config_error("[storage]\nroot = \"/no/such/dir\"\n");
    assert_eq!(code, 2);
    assert!(
        err.contains("field `storage.root`") && err.contains("/no/such/dir"),
        "{err}"
    );

    let (code, err) =
        config_error("[storage]\nroot = \"/tmp\"\n[cache_control]\nsegment = \"max-age=forever\"\n");
    assert_eq!(code, 2);
    assert!(
        err.contains("field `cache_control.segment`") && err.contains("max-age"),
        "{err}"
    );

    let (code, err) = config_error("[limits]\nmax_rangez = 3\n");
    assert_eq!(code, 2);
    assert!(err.contains("max_rangez"), "{err}");

    let (code, err) = config_error("version = 7\n");
    assert_eq!(code, 2);
    assert!(err.contains("field `version`"), "{err}");

    let (code, err) = config_error("listen = [\n");
    assert_eq!(code, 2);
    assert!(err.contains("not valid TOML"), "{err}");
}

#[test]
fn a_missing_file_and_bad_flags_are_named() {
    let (status, _, err) = run_strata(&["origin", "--config", "/no/such/origin.toml"], &[]);
    assert_eq!(status.code(), Some(2));
    assert!(
        err.contains("/no/such/origin.toml") && err.contains("cannot read"),
        "{err}"
    );

    let (status, _, err) = run_strata(&["origin", "--root", "/no/such/dir", "--check-config"], &[]);
    assert_eq!(status.code(), Some(2));
    assert!(
        err.contains("command-line flags") && err.contains("storage.root"),
        "{err}"
    );

    let (status, _, err) = run_strata(&["origin", "--listen", "nonsense"], &[]);
    assert!(!status.success());
    assert!(err.contains("--listen"), "{err}");
}

#[test]
fn the_edge_default_config_is_printed_and_its_errors_are_named() {
    let (status, text, _) = run_strata(&["edge", "--print-default-config"], &[]);
    assert!(status.success());
    assert!(text.contains("[cache]") && text.contains("eviction = \"s3fifo\""));
    let (status, _, err) = run_strata(&["edge", "--upstream", "ftp://x", "--check-config"], &[]);
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("field `upstream`"), "{err}");
    let (status, _, err) = run_strata(&["edge", "--disk-mb", "10", "--check-config"], &[]);
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("field `cache.disk_mb`"), "{err}");
    let (status, out, err) = run_strata(&["edge", "--disk-mb", "0", "--check-config"], &[]);
    assert!(status.success(), "{out}{err}");
}

#[test]
fn the_midtier_has_its_own_defaults_flags_and_named_errors() {
    let (status, text, _) = run_strata(&["midtier", "--print-default-config"], &[]);
    assert!(status.success());
    assert!(text.contains("listen = \"127.0.0.1:8082\""), "{text}");
    let (status, out, _) = run_strata(&["midtier", "--help"], &[]);
    assert!(status.success());
    for flag in [
        "--upstream",
        "--upstream-failover",
        "--cache-dir",
        "--memory-mb",
        "--disk-mb",
        "--node-id",
    ] {
        assert!(out.contains(flag), "{flag} missing from:\n{out}");
    }
    let (status, _, err) = run_strata(
        &["midtier", "--upstream-failover", "http://a/b", "--check-config"],
        &[],
    );
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("field `upstream_failover`"), "{err}");

    // A file that leaves fields out gets the mid-tier's defaults, not the edge's.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("midtier.toml");
    std::fs::write(&file, "[cache]\nmemory_mb = 64\n").unwrap();
    let (status, out, err) = run_strata(
        &["midtier", "--config", file.to_str().unwrap(), "--check-config"],
        &[],
    );
    assert!(status.success(), "{out}{err}");
    std::fs::write(
        &file,
        "[[parents]]\nurl = \"http://127.0.0.2:8082\"\nweight = 0\n",
    )
    .unwrap();
    let (status, _, err) = run_strata(
        &["midtier", "--config", file.to_str().unwrap(), "--check-config"],
        &[],
    );
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("field `parents[0].weight`"), "{err}");
}

#[test]
fn the_edge_takes_parents_and_checks_them() {
    let (status, out, _) = run_strata(&["edge", "--help"], &[]);
    assert!(status.success());
    assert!(out.contains("--parent"), "{out}");
    let (status, out, err) = run_strata(
        &[
            "edge",
            "--parent",
            "http://127.0.0.2:8082",
            "--parent",
            "http://127.0.0.3:8082",
            "--check-config",
        ],
        &[],
    );
    assert!(status.success(), "{out}{err}");
    let (status, _, err) = run_strata(&["edge", "--parent", "https://x", "--check-config"], &[]);
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("field `parents[0].url`"), "{err}");
    let (status, _, err) = run_strata(&["edge", "--node-id", "bad id", "--check-config"], &[]);
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("field `node_id`"), "{err}");
}

#[test]
fn the_three_tier_example_configs_are_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/examples/three-tier");
    for (role, file) in [("edge", "edge.toml"), ("midtier", "midtier.toml")] {
        let path = format!("{dir}/{file}");
        let (status, out, err) = run_strata(&[role, "--config", &path, "--check-config"], &[]);
        assert!(status.success(), "{role} {file}: {out}{err}");
    }
    // The origin's storage root does not exist here; everything else must check out.
    let (_, _, err) = run_strata(
        &[
            "origin",
            "--config",
            &format!("{dir}/origin.toml"),
            "--check-config",
        ],
        &[],
    );
    assert!(err.is_empty() || err.contains("storage.root"), "{err}");
}

#[test]
fn the_control_plane_prints_its_defaults_and_names_bad_fields() {
    let (status, text, _) = run_strata(&["control-plane", "--print-default-config"], &[]);
    assert!(status.success());
    assert!(
        text.contains("listen = \"127.0.0.1:8090\"") && text.contains("[[tiers]]"),
        "{text}"
    );
    let (status, _, err) = run_strata(
        &["control-plane", "--cdn-url", "edge:8081", "--check-config"],
        &[],
    );
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("field `cdn_url`"), "{err}");
    let (status, _, err) = run_strata(
        &["control-plane", "--database", "mysql://x", "--check-config"],
        &[],
    );
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("field `database`"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cp.toml");
    std::fs::write(&file, "[[token_keys]]\nid = \"k\"\nsecret = \"too short\"\n").unwrap();
    let (status, _, err) = run_strata(
        &[
            "control-plane",
            "--config",
            file.to_str().unwrap(),
            "--check-config",
        ],
        &[],
    );
    assert_eq!(status.code(), Some(2));
    assert!(
        err.contains("field `token_keys`") && err.contains("shorter than 32"),
        "{err}"
    );
    // A catalog file with a bad field is named before anything is sent.
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, r#"{"version": 1, "titles": [{"id": "a", "name": 5}]}"#).unwrap();
    let (status, _, err) = run_strata(
        &[
            "catalog",
            "import",
            catalog.to_str().unwrap(),
            "--admin-token",
            "x",
            "--url",
            "http://127.0.0.1:9",
        ],
        &[],
    );
    assert!(!status.success());
    assert!(err.contains("titles[0].name"), "{err}");
}
