import ArgumentParser
import ProxCore
import ProxFilters

/// `prox`: the reverse proxy whose configuration is a declaration.
public struct ProxCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "prox",
        abstract: "A reverse proxy whose configuration is a declaration, not a program.",
        discussion: """
        Without a subcommand, `prox` runs `serve` on the embedded default config.
        See docs/CLI.md for every command and option.
        """,
        subcommands: [Serve.self, Validate.self, DryRunCommand.self, Check.self, Diff.self, Schema.self, FiltersCommand.self],
        defaultSubcommand: Serve.self
    )

    /// The filters every command compiles, documents and lists with. Set once, before `main()`,
    /// by the binary's entry point (`ProxMain.run`); the built-ins alone until then.
    nonisolated(unsafe) public static var filters: FilterRegistry = BuiltinFilters.registry

    public init() {}
}
