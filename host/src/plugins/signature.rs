//! The exported function of a plugin, type-checked when the plugin is loaded.
//!
//! wasmtime checks a typed export when it is first called; a component whose `check` takes or
//! returns the wrong types would load, pass `plugin inspect`, and fail in the middle of a
//! deploy. Here the function's type is checked against the host's bindings (the same check
//! wasmtime makes at call time) as soon as the kind is known, and a mismatch names the function
//! and both signatures.

use std::fmt::Write as _;

use wasmtime::Engine;
use wasmtime::component::types::{self, ComponentItem, Type};

use super::PluginKind;
use super::bindings::wit_types;

/// The function each kind exports, and its signature as `wit/tagship.wit` writes it.
pub(super) fn expected(kind: PluginKind) -> (&'static str, &'static str) {
    match kind {
        PluginKind::HealthCheck => (
            "check",
            "func(ctx: deploy-context) -> result<health-report, string>",
        ),
        PluginKind::Notifier => ("notify", "func(event: event) -> result<_, string>"),
        PluginKind::CompatCheck => (
            "check",
            "func(ctx: deploy-context) -> result<compat-report, string>",
        ),
    }
}

/// Why an export does not fit: the function and what it is instead.
#[derive(Debug)]
pub(super) struct Mismatch {
    /// `interface#function`.
    pub(super) function: String,
    /// What the plugin exports, as WIT-like text (or "nothing").
    pub(super) found: String,
    /// What the host calls.
    pub(super) expected: &'static str,
}

/// Checks that `interface` (an exported instance, e.g. `tagship:plugin/health@0.1.0`) has the
/// function of `kind` with the host's types.
pub(super) fn check(
    engine: &Engine,
    component: &types::Component,
    interface: &str,
    kind: PluginKind,
) -> Result<(), Mismatch> {
    let (name, expected) = expected(kind);
    let mismatch = |found: String| Mismatch {
        function: format!("{interface}#{name}"),
        found,
        expected,
    };
    let Some(ComponentItem::ComponentInstance(instance)) =
        component.get_export(engine, interface).map(|e| e.ty)
    else {
        return Err(mismatch("no such instance".into()));
    };
    let func = match instance.get_export(engine, name).map(|e| e.ty) {
        Some(ComponentItem::ComponentFunc(func)) => func,
        Some(_) => return Err(mismatch("an item that is not a function".into())),
        None => return Err(mismatch("no function of that name".into())),
    };
    let cx = component.instance_type();
    let typed = match kind {
        PluginKind::HealthCheck => func
            .typecheck::<(wit_types::DeployContext,), (Result<wit_types::HealthReport, String>,)>(
                &cx,
            ),
        PluginKind::Notifier => func.typecheck::<(wit_types::Event,), (Result<(), String>,)>(&cx),
        PluginKind::CompatCheck => func
            .typecheck::<(wit_types::DeployContext,), (Result<wit_types::CompatReport, String>,)>(
                &cx,
            ),
    };
    if func.async_() {
        return Err(mismatch(format!("async {}", render_func(&func))));
    }
    typed.map_err(|_| mismatch(render_func(&func)))
}

/// Characters of a rendered signature shown; a record of records can run long.
const MAX_RENDERED: usize = 400;

/// `func(name: type, ...) -> type` of a component function.
pub(super) fn render_func(func: &types::ComponentFunc) -> String {
    let mut out = String::from("func(");
    for (i, (name, ty)) in func.params().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{name}: ");
        render(&mut out, &ty, 0);
    }
    out.push(')');
    let results: Vec<Type> = func.results().collect();
    if let [result] = results.as_slice() {
        out.push_str(" -> ");
        render(&mut out, result, 0);
    }
    if out.len() > MAX_RENDERED {
        let mut cut = MAX_RENDERED;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// A type as WIT writes it, records and variants spelled out (component types carry no
/// names of their own); nesting deeper than a few levels is shown as `…`.
fn render(out: &mut String, ty: &Type, depth: usize) {
    if depth > 4 || out.len() > MAX_RENDERED {
        out.push('…');
        return;
    }
    if let Some(name) = primitive(ty) {
        out.push_str(name);
        return;
    }
    match ty {
        Type::List(list) => {
            out.push_str("list<");
            render(out, &list.ty(), depth + 1);
            out.push('>');
        }
        Type::Option(option) => {
            out.push_str("option<");
            render(out, &option.ty(), depth + 1);
            out.push('>');
        }
        Type::Result(result) => {
            out.push_str("result<");
            match result.ok() {
                Some(ok) => render(out, &ok, depth + 1),
                None => out.push('_'),
            }
            out.push_str(", ");
            match result.err() {
                Some(err) => render(out, &err, depth + 1),
                None => out.push('_'),
            }
            out.push('>');
        }
        Type::Record(record) => {
            out.push_str("record { ");
            for (i, field) in record.fields().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{}: ", field.name);
                render(out, &field.ty, depth + 1);
            }
            out.push_str(" }");
        }
        Type::Tuple(tuple) => {
            out.push_str("tuple<");
            for (i, ty) in tuple.types().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render(out, &ty, depth + 1);
            }
            out.push('>');
        }
        Type::Enum(e) => {
            let _ = write!(
                out,
                "enum {{ {} }}",
                e.names().collect::<Vec<_>>().join(", ")
            );
        }
        Type::Flags(f) => {
            let _ = write!(
                out,
                "flags {{ {} }}",
                f.names().collect::<Vec<_>>().join(", ")
            );
        }
        Type::Variant(v) => {
            out.push_str("variant { ");
            for (i, case) in v.cases().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(case.name);
                if let Some(ty) = &case.ty {
                    out.push('(');
                    render(out, ty, depth + 1);
                    out.push(')');
                }
            }
            out.push_str(" }");
        }
        Type::Own(_) => out.push_str("own<resource>"),
        Type::Borrow(_) => out.push_str("borrow<resource>"),
        Type::Map(map) => {
            out.push_str("map<");
            render(out, &map.key(), depth + 1);
            out.push_str(", ");
            render(out, &map.value(), depth + 1);
            out.push('>');
        }
        Type::FixedLengthList(list) => {
            out.push_str("list<");
            render(out, &list.ty(), depth + 1);
            let _ = write!(out, ", {}>", list.len());
        }
        Type::Future(_) => out.push_str("future<…>"),
        Type::Stream(_) => out.push_str("stream<…>"),
        _ => out.push('?'),
    }
}

/// The WIT name of a primitive type.
fn primitive(ty: &Type) -> Option<&'static str> {
    Some(match ty {
        Type::Bool => "bool",
        Type::S8 => "s8",
        Type::U8 => "u8",
        Type::S16 => "s16",
        Type::U16 => "u16",
        Type::S32 => "s32",
        Type::U32 => "u32",
        Type::S64 => "s64",
        Type::U64 => "u64",
        Type::Float32 => "f32",
        Type::Float64 => "f64",
        Type::Char => "char",
        Type::String => "string",
        Type::ErrorContext => "error-context",
        _ => return None,
    })
}
