//! Every hostile program gets its exact typed failure, the host is unharmed, and the next
//! message runs in a fresh instance.

use sluice_runtime::InstanceEnv;
use sluice_test_programs as tp;
use sluice_types::{GuestFailure, Limits, ModulePolicy, TrapKind};

use crate::{assert_host_unharmed, instance, load_with, module_ref, uplink};

fn policy(limits: Limits) -> ModulePolicy {
    ModulePolicy {
        limits,
        ..ModulePolicy::default()
    }
}

#[test]
fn infinite_loop_exhausts_fuel_and_the_next_call_gets_a_fresh_instance() {
    let mut inst = instance(tp::TP_INFINITE_LOOP);
    let out = inst.decode(&uplink(b"x"));
    assert_eq!(
        out.result.expect_err("loops"),
        GuestFailure::FuelExhausted {
            module: module_ref("tp_infinite_loop"),
            limit_fuel: Limits::default().fuel_per_call,
        }
    );
    assert_eq!(out.report.fuel_consumed, Limits::default().fuel_per_call);
    assert!(!inst.is_live(), "a trapped instance is discarded");
    let again = inst.decode(&uplink(b"x"));
    assert!(matches!(
        again.result,
        Err(GuestFailure::FuelExhausted { .. })
    ));
    assert_eq!(inst.instantiations(), 2);
    assert_host_unharmed();
}

#[test]
fn infinite_loop_hits_the_deadline_when_fuel_is_plentiful() {
    let limits = Limits {
        fuel_per_call: 1_000_000_000,
        deadline_ms: 20,
        ..Limits::default()
    };
    let mut inst =
        load_with(tp::TP_INFINITE_LOOP, policy(limits)).instantiate(InstanceEnv::default());
    let out = inst.decode(&uplink(b"x"));
    assert_eq!(
        out.result.expect_err("loops"),
        GuestFailure::DeadlineExceeded {
            module: module_ref("tp_infinite_loop"),
            limit_ms: 20,
        }
    );
    // Stopped near the deadline, not long after (generous bound for a loaded CI machine).
    assert!(
        out.report.duration < std::time::Duration::from_millis(2_000),
        "{:?}",
        out.report.duration
    );
    assert_host_unharmed();
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    let limits = Limits {
        max_memory_bytes: 8 * 1024 * 1024,
        ..Limits::default()
    };
    let mut inst =
        load_with(tp::TP_MEMORY_BOMB, policy(limits)).instantiate(InstanceEnv::default());
    let out = inst.decode(&uplink(b"x"));
    assert_eq!(
        out.result.expect_err("explodes"),
        GuestFailure::MemoryLimit {
            module: module_ref("tp_memory_bomb"),
            limit_bytes: 8 * 1024 * 1024,
        }
    );
    assert!(!inst.is_live());
    assert_host_unharmed();
}

#[test]
fn unbounded_recursion_overflows_the_stack() {
    let mut inst = instance(tp::TP_RECURSION);
    let out = inst.decode(&uplink(b"x"));
    assert_eq!(
        out.result.expect_err("recurses"),
        GuestFailure::StackOverflow {
            module: module_ref("tp_recursion"),
            limit_bytes: Limits::default().max_stack_bytes,
        }
    );
    assert_host_unharmed();
}

#[test]
fn a_smaller_stack_limit_overflows_sooner() {
    // Fuel consumed before the overflow grows with the stack the guest may use.
    let fuel_with = |stack: u64| {
        let limits = Limits {
            max_stack_bytes: stack,
            ..Limits::default()
        };
        let mut inst =
            load_with(tp::TP_RECURSION, policy(limits)).instantiate(InstanceEnv::default());
        let out = inst.decode(&uplink(b"x"));
        assert_eq!(
            out.result.expect_err("recurses"),
            GuestFailure::StackOverflow {
                module: module_ref("tp_recursion"),
                limit_bytes: stack,
            }
        );
        out.report.fuel_consumed
    };
    let small = fuel_with(128 * 1024);
    let large = fuel_with(1024 * 1024);
    assert!(
        large > small * 4,
        "128 KiB: {small} fuel, 1 MiB: {large} fuel"
    );
    assert_host_unharmed();
}

#[test]
fn panic_is_an_unreachable_trap_carrying_the_panic_message_and_backtrace() {
    let mut inst = instance(tp::TP_PANIC);
    let out = inst.decode(&uplink(b""));
    let Err(GuestFailure::Trap {
        module,
        kind,
        message,
        backtrace,
    }) = out.result
    else {
        panic!("expected a trap, got {:?}", out.result);
    };
    assert_eq!(module, module_ref("tp_panic"));
    assert_eq!(kind, TrapKind::Unreachable);
    assert!(message.contains("codec panicked on purpose"), "{message}");
    assert!(backtrace.is_some_and(|bt| !bt.is_empty()));
    // The panic message also reached the module log (stderr).
    assert!(
        out.report
            .logs
            .iter()
            .any(|l| l.message.contains("codec panicked on purpose"))
    );
    assert!(!inst.is_live());
    assert_host_unharmed();
}

#[test]
fn unreachable_and_division_by_zero_are_typed_traps() {
    let mut inst = instance(tp::TP_PANIC);
    let unreachable = inst.decode(&uplink(&[0x01])).result.expect_err("traps");
    assert!(
        matches!(
            unreachable,
            GuestFailure::Trap {
                kind: TrapKind::Unreachable,
                ..
            }
        ),
        "{unreachable:?}"
    );
    let division = inst.decode(&uplink(&[0x02])).result.expect_err("traps");
    assert!(
        matches!(
            division,
            GuestFailure::Trap {
                kind: TrapKind::IntegerDivisionByZero,
                ..
            }
        ),
        "{division:?}"
    );
    assert_eq!(inst.instantiations(), 2);
    assert_host_unharmed();
}

#[test]
fn huge_output_is_refused_as_too_large() {
    // Enough fuel and time to build the 4 MiB document, so the output limit is what stops it.
    let limits = Limits {
        fuel_per_call: 500_000_000,
        deadline_ms: 5_000,
        max_memory_bytes: 64 * 1024 * 1024,
        ..Limits::default()
    };
    let mut inst =
        load_with(tp::TP_HUGE_OUTPUT, policy(limits)).instantiate(InstanceEnv::default());
    let out = inst.decode(&uplink(b"x"));
    let Err(GuestFailure::OutputTooLarge {
        module,
        size_bytes,
        limit_bytes,
    }) = out.result
    else {
        panic!("expected output-too-large, got {:?}", out.result);
    };
    assert_eq!(module, module_ref("tp_huge_output"));
    assert_eq!(limit_bytes, Limits::default().max_output_bytes);
    assert!(size_bytes > 4 * 1000 * 1000, "{size_bytes}");
    // A refused output does not poison the instance.
    assert!(inst.is_live());
    assert_host_unharmed();
}

#[test]
fn log_flood_is_capped_and_counted_and_the_call_still_succeeds() {
    // Enough fuel and time for 100k log calls, so the log caps are what is exercised.
    let limits = Limits {
        fuel_per_call: 1_000_000_000,
        deadline_ms: 10_000,
        ..Limits::default()
    };
    let mut inst = load_with(tp::TP_LOG_FLOOD, policy(limits)).instantiate(InstanceEnv::default());
    let out = inst.decode(&uplink(b"x"));
    let document = out.result.expect("the flood itself is not an error");
    assert_eq!(document.as_map()["ok"], true);
    let limits = Limits::default();
    assert_eq!(out.report.logs.len() as u32, limits.max_log_lines_per_call);
    let bytes: usize = out.report.logs.iter().map(|l| l.message.len()).sum();
    assert!(bytes as u64 <= limits.max_log_bytes_per_call);
    assert!(
        out.report.logs_dropped > 90_000,
        "{}",
        out.report.logs_dropped
    );
    assert_host_unharmed();
}

#[test]
fn log_flood_under_default_limits_is_stopped_by_a_limit() {
    let mut inst = instance(tp::TP_LOG_FLOOD);
    let out = inst.decode(&uplink(b"x"));
    assert!(
        matches!(
            out.result,
            Err(GuestFailure::FuelExhausted { .. } | GuestFailure::DeadlineExceeded { .. })
        ),
        "{:?}",
        out.result
    );
    assert!(out.report.logs.len() as u32 <= Limits::default().max_log_lines_per_call);
    assert_host_unharmed();
}

#[test]
fn non_document_outputs_are_invalid_output() {
    let mut inst = instance(tp::TP_BAD_OUTPUT);
    for (case, needle) in [
        (0u8, "not valid JSON"),
        (1, "must be a map"),
        (2, "not valid CBOR"),
        (3, "nest"),
    ] {
        let out = inst.decode(&uplink(&[case]));
        let Err(GuestFailure::InvalidOutput { module, reason }) = out.result else {
            panic!("case {case}: expected invalid output, got {:?}", out.result);
        };
        assert_eq!(module, module_ref("tp_bad_output"));
        assert!(reason.contains(needle), "case {case}: {reason}");
    }
    assert_eq!(inst.instantiations(), 1, "invalid output does not poison");
    assert_host_unharmed();
}

#[test]
fn a_typed_codec_error_is_a_guest_error_and_keeps_the_instance() {
    let mut inst = instance(tp::TP_ECHO);
    let out = inst.decode(&uplink(&[0xEE, 1]));
    let Err(GuestFailure::GuestError { module, error }) = out.result else {
        panic!("expected a guest error, got {:?}", out.result);
    };
    assert_eq!(module, module_ref("tp_echo"));
    assert_eq!(error.kind, sluice_types::CodecErrorKind::InvalidInput);
    assert_eq!(error.message, "bad frame");
    assert!(inst.is_live());
    assert!(inst.decode(&uplink(b"ok")).result.is_ok());
    assert_eq!(inst.instantiations(), 1);
}

#[test]
fn filesystem_guest_is_refused_without_its_grant() {
    let bytes = crate::read(tp::TP_FILESYSTEM);
    let err = crate::runtime()
        .load(module_ref("fs"), &bytes, ModulePolicy::default())
        .expect_err("not granted");
    let GuestFailure::Rejected {
        error: sluice_types::ValidationError::NotGranted { import, grant },
        ..
    } = &err
    else {
        panic!("expected not-granted, got {err:?}");
    };
    assert!(import.starts_with("wasi:filesystem/"), "{import}");
    assert_eq!(grant, "filesystem");
    assert!(
        err.to_string().contains("needs the `filesystem` grant"),
        "{err}"
    );
}

#[test]
fn filesystem_guest_with_the_grant_sees_no_directory_at_all() {
    let granted = ModulePolicy {
        grants: sluice_types::Grants { filesystem: true },
        ..ModulePolicy::default()
    };
    let mut inst = load_with(tp::TP_FILESYSTEM, granted).instantiate(InstanceEnv::default());
    let out = inst.decode(&uplink(b"x"));
    let text = match &out.result {
        Ok(doc) => doc.to_string(),
        Err(e) => e.to_string(),
    };
    assert!(!text.contains("root:"), "host file leaked: {text}");
    assert_host_unharmed();
}

#[test]
fn sockets_guest_is_refused_naming_the_import() {
    let bytes = crate::read(tp::TP_SOCKETS);
    let err = crate::runtime()
        .load(module_ref("net"), &bytes, ModulePolicy::default())
        .expect_err("sockets are never provided");
    let GuestFailure::Rejected {
        error: sluice_types::ValidationError::ImportNotAllowed { import },
        ..
    } = &err
    else {
        panic!("expected import-not-allowed, got {err:?}");
    };
    assert!(import.starts_with("wasi:sockets/"), "{import}");
}

#[test]
fn memory_limit_at_instantiation_is_a_memory_limit() {
    // 64 KiB is below what any Rust guest needs at start (its stack alone is 1 MiB).
    let limits = Limits {
        max_memory_bytes: 64 * 1024,
        ..Limits::default()
    };
    let mut inst = load_with(tp::TP_ECHO, policy(limits)).instantiate(InstanceEnv::default());
    let out = inst.decode(&uplink(b"x"));
    assert!(
        matches!(
            out.result,
            Err(GuestFailure::MemoryLimit {
                limit_bytes: 65_536,
                ..
            })
        ),
        "{:?}",
        out.result
    );
    assert_host_unharmed();
}

#[test]
fn many_hostile_calls_in_a_row_leak_no_instance_slots() {
    // More traps than the pool has slots: each discarded instance must free its slot.
    let mut inst = instance(tp::TP_PANIC);
    let slots = crate::runtime().config().max_instances;
    for _ in 0..slots + 10 {
        assert!(inst.decode(&uplink(&[0x01])).result.is_err());
    }
    assert_host_unharmed();
}
