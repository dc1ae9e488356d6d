//! Test helpers shared by the config's tests and the tests of modules that parse a config
//! (`health`): one origin, one smallest valid config.

use std::path::PathBuf;

use super::Origin;

/// The origin of test configs: `/etc/ferrule/test.yaml`, state in `/run/state`.
pub fn origin() -> Origin {
    Origin {
        name: "test.yaml".into(),
        base_dir: PathBuf::from("/etc/ferrule"),
        state_dir: PathBuf::from("/run/state"),
    }
}

/// The smallest valid config: a site and one device with two points.
pub const MINIMAL: &str = "\
site: plant1
devices:
  - name: boiler
    tcp: \"10.0.0.1:502\"
    points:
      - {name: temp, kind: holding, address: 100}
      - {name: run, kind: coil, address: 3}
";
