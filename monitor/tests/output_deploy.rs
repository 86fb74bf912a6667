//! The example configurations shipped in deploy/ load without errors or warnings.

use std::path::Path;

use monitor::config::Config;

fn deploy(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file)
}

#[test]
fn example_monitor_yaml_is_clean() {
    let (cfg, warnings) = Config::load(Some(&deploy("monitor.yaml")), &[]).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(cfg.webserver.listen_address.to_string(), "127.0.0.1");
    assert_eq!(cfg.rules_files, vec![Path::new("/etc/monitor/rules.d")]);
}

#[test]
fn kubernetes_configmap_configuration_is_clean() {
    let text = std::fs::read_to_string(deploy("k8s/configmap.yaml")).unwrap();
    let mut found = false;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap();
        if let Some(conf) = v["data"]["monitor.yaml"].as_str() {
            let (cfg, warnings) = Config::from_yaml_str(conf).unwrap();
            assert!(warnings.is_empty(), "{warnings:?}");
            // The kubelet probes the pod IP.
            assert!(cfg.webserver.listen_address.is_unspecified());
            assert!(cfg.json_output);
            found = true;
        }
    }
    assert!(found, "monitor.yaml in the ConfigMap");
    let ds = std::fs::read_to_string(deploy("k8s/daemonset.yaml")).unwrap();
    assert!(ds.contains("/etc/monitor/config/monitor.yaml"));
}
