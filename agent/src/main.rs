fn main() {
    println!("kovs-agent: not yet implemented");
}
