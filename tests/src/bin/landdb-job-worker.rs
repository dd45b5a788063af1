//! The import worker for the end-to-end tests' servers: what `landdb job-run` runs (the same
//! function, the same allocator), built with the tests, since a test cannot name another
//! package's binary.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    landdb_api::jobs::worker::main()
}
