//! Write-back to this monitor: being written (issue 5); `build` refuses until then.

use std::sync::Arc;

use super::{Adapter, Settings, SettingsError};

pub fn build(_settings: &Settings) -> Result<Arc<dyn Adapter>, SettingsError> {
    Err(SettingsError::new("kind", "write-back to this monitor is not available yet"))
}
