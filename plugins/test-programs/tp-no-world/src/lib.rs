//! Test guest `tp-no-world`: a valid component that targets none of tagship's worlds; it exports
//! only `foo:bar/baz@1.0.0` (`hello: func() -> string`, returning `hello`). The host must refuse
//! to load it as a plugin and say which exports it looked for.

// Generated bindings and the generated export glue are unsafe and undocumented by nature.
#[allow(unsafe_code, missing_docs, clippy::all, clippy::pedantic)]
mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "no-world",
    });

    use super::NoWorld;
    export!(NoWorld);
}

struct NoWorld;

impl bindings::exports::foo::bar::baz::Guest for NoWorld {
    fn hello() -> String {
        "hello".to_owned()
    }
}
