import ArgumentParser
import ProxCore
import ProxFilters

/// `prox`: the reverse proxy whose configuration is a declaration.
public struct ProxCommand: ParsableCommand {
    // Every command names itself: ArgumentParser would derive the name with
    // `String(describing:)`, whose first cast per type scans the binary's conformances.
    public static let configuration = CommandConfiguration(
        commandName: "prox",
        abstract: "A reverse proxy whose configuration is a declaration, not a program.",
        discussion: "Without a subcommand, `prox` runs `serve` on the embedded default config. See docs/CLI.md for every command and option.",
        version: "prox " + ProxCommand.version,
        subcommands: [Serve.self, Validate.self, DryRunCommand.self, Check.self, Diff.self, Schema.self, FiltersCommand.self],
        defaultSubcommand: Serve.self
    )

    /// The filters every command compiles, documents and lists with. Set once, before `main()`,
    /// by the binary's entry point (`ProxMain.run`); the built-ins alone until then.
    nonisolated(unsafe) public static var filters: FilterRegistry = BuiltinFilters.registry

    /// What `prox --version` prints after the name.
    public static let version = "0.9.0"

    public init() {}

    /// The error for a first argument that names no command, or nil. Without this check the
    /// word falls through to the default command, `serve`, which says "unexpected arguments".
    public static func unknownCommand(_ arguments: [String]) -> String? {
        guard let first = arguments.first, !first.hasPrefix("-") else { return nil }
        let names = configuration.subcommands.map { $0._commandName } + ["help"]
        if names.contains(first) { return nil }
        if let s = suggestion(for: first, in: names) { return "unknown command '\(first)', did you mean '\(s)'?" }
        return "unknown command '\(first)'; the commands are: " + names.joined(separator: ", ")
    }
}
