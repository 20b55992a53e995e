//! The integrations, wired into the core's extension points that no caller registers:
//! the policy file's sections. One line per integration; the core names none of them.

use crate::policy::FileSection;

/// The sections a policy file may hold beside the core's keys.
pub(crate) const POLICY_FILE_SECTIONS: &[FileSection] = &[AISTORE];

#[cfg(feature = "aistore")]
const AISTORE: FileSection = crate::aistore::POLICY_FILE_SECTION;

/// Without the feature, AIStore's keys are refused with the fix.
#[cfg(not(feature = "aistore"))]
const AISTORE: FileSection = FileSection {
    keys: &["ais_cluster", "ais"],
    read: |_, _, origin| {
        Err(crate::ConfigError::at(
            crate::ConfigErrorKind::Policy,
            origin,
            "ais",
            "AIStore rules need the `aistore` feature of portcullis",
        ))
    },
};
