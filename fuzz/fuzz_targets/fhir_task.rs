//! The FHIR channel's readers of provider input: a Task (status, the codes of statusReason and
//! businessStatus, the identifier) and a JSON Patch, applied to a Task of the gateway's shape.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pnp_gateway::service::fhir_task::{patch, task};

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = task::read(&doc);
    if let Ok(ops) = patch::ops(&doc) {
        let mut t = serde_json::json!({
            "resourceType": "Task",
            "id": "0f0c5a44-6f1e-5b5a-9d7e-3a1c2b4d5e6f",
            "status": "requested",
            "intent": "order",
            "statusReason": {"coding": [{"code": "x"}]},
            "businessStatus": {"coding": [{"code": "y"}]}
        });
        if patch::apply(&mut t, &ops).is_ok() {
            let _ = task::read(&t);
        }
    }
});
