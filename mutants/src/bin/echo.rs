//! The `echo` workload's node: every `echo` is answered with an `echo_ok` carrying the same
//! `echo`. It has no state and no bugs; it exists so that every workload has a Rust node.

use converge_mutants::{ErrorCode, Handler, Message, Node, bug_from_args, run};
use serde_json::json;
use std::process::ExitCode;

struct Echo;

impl Handler for Echo {
    fn init(&mut self, _node: &Node) {}

    fn message(&mut self, node: &Node, msg: Message) {
        match msg.kind() {
            "echo" => match msg.get("echo") {
                Some(echo) => {
                    let body = json!({"type": "echo_ok", "echo": echo});
                    node.reply(&msg, body);
                }
                None => node.error(&msg, ErrorCode::MalformedRequest, "echo without `echo`"),
            },
            _ => node.unknown(&msg),
        }
    }
}

fn main() -> ExitCode {
    // No bugs to choose from, but a bad command line is still refused with exit code 2.
    let _: Option<()> = bug_from_args(&[]);
    run(Echo, None)
}
