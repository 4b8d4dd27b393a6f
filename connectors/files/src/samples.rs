//! The bundled sample exports (`samples/`), compiled into the crate so that the quickstart can write
//! them out anywhere and run the source over them with [`write_samples`].

use std::path::Path;

use crate::config::FilesConfig;

/// Sample files: path relative to the samples directory, content.
pub const SAMPLE_FILES: &[(&str, &str)] = &[
    ("vendors/vendors-2025-05.csv", include_str!("../samples/vendors/vendors-2025-05.csv")),
    ("applications.json", include_str!("../samples/applications.json")),
    ("contracts.ndjson", include_str!("../samples/contracts.ndjson")),
    ("servers/servers-2025-05-01.csv", include_str!("../samples/servers/servers-2025-05-01.csv")),
];

/// The sample config (`samples/files.yaml`, with its `type: files` line).
pub const SAMPLE_CONFIG: &str = include_str!("../samples/files.yaml");

/// Writes the sample files under `dir` and returns the sample config reading them there.
pub fn write_samples(dir: &Path) -> std::io::Result<FilesConfig> {
    for (rel, text) in SAMPLE_FILES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, text)?;
    }
    let yaml: String = SAMPLE_CONFIG
        .lines()
        .filter(|l| !l.starts_with("type:"))
        .map(|l| l.replace("path: samples/", &format!("path: {}/", dir.display())))
        .collect::<Vec<_>>()
        .join("\n");
    serde_yaml::from_str(&yaml).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_write_out_and_their_config_validates() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write_samples(dir.path()).unwrap();
        cfg.validate("samples").unwrap();
        assert_eq!(cfg.exports.len(), 4);
        assert!(dir.path().join("vendors/vendors-2025-05.csv").is_file());
        assert!(cfg.exports.iter().all(|e| e.path.starts_with(dir.path())));
    }
}
