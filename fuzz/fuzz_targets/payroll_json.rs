//! Payroll JSON uploads (`POST /v1/payrolls`, `application/json`):
//! `{"name", "hold", "items": [<disbursement body>, ...]}`, each item validated and routed as
//! `POST /v1/disbursements` would be.
#![no_main]

use libfuzzer_sys::fuzz_target;
use railgate::api::payrolls::file::read_json;

use railgate_fuzz::payroll as common;

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = read_json(data, common::rails()) else {
        return;
    };
    common::check(&parsed);
});
