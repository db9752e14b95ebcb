//! Lets the library find libtorch beside itself (`$ORIGIN`), as `make
//! pytorch` and the PyTorch image lay them out.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-rpath,$ORIGIN");
}
