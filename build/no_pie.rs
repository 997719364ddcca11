//! The build script of every function (`build = "../../build/no_pie.rs"`):
//! on Linux, its binary is linked as a fixed-address executable, not PIE.
//!
//! A PIE binary keeps a dynamic relocation for every pointer in its constant
//! data, and the AWS SDK's schemas hold many: about a sixth of each binary,
//! and work for the loader at every cold start. The packed form (DT_RELR)
//! would keep PIE, but Lambda's AL2023 glibc (2.34) cannot read it (it needs
//! 2.36). Only the binary's link changes (`rustc-link-arg-bins`): the code is
//! still compiled position-independent, and libraries stay shared objects.
//! The trade: the executable's own code is not address-randomized; the heap,
//! the stack and the shared libraries still are.

fn main() {
    println!("cargo::rerun-if-changed=../../build/no_pie.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo::rustc-link-arg-bins=-no-pie");
    }
}
