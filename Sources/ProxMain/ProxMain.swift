import Foundation
import ProxCLI
import ProxCore
import ProxFilters

/// The `prox` command line as a library, so a team can build its own `prox` with its own
/// filters without forking (docs/FILTERS.md, "Out of tree"; templates/custom-prox/):
///
/// ```swift
/// // Sources/prox/main.swift of the team's package
/// import ProxMain
/// ProxMain.run(extraFilters: [FilterDescriptor(AcmeAuthFactory.self)])
/// ```
public enum ProxMain {
    /// The shipped filters: the built-ins, then every filter of `filters/`.
    public static func shippedFilters() throws(FilterRegistry.DuplicateName) -> FilterRegistry {
        var r = BuiltinFilters.registry
        try CustomFilters.register(into: &r)
        return r
    }

    /// The shipped filters plus `extra`, registered as made at `file:line`.
    public static func filters(extraFilters extra: [FilterDescriptor] = [], file: String = #fileID,
                               line: Int = #line) throws(FilterRegistry.DuplicateName) -> FilterRegistry {
        var r = try shippedFilters()
        try r.register(extra, origin: .custom, file: file, line: line)
        return r
    }

    /// Parses the command line and runs it with the shipped filters plus `extraFilters`.
    /// Two filters with one name stop it before anything runs (exit 70), naming both.
    public static func run(extraFilters: [FilterDescriptor] = [], file: String = #fileID, line: Int = #line) {
        do {
            ProxCommand.filters = try filters(extraFilters: extraFilters, file: file, line: line)
        } catch {
            FileHandle.standardError.write(Data("prox: \(error)\n".utf8))
            exit(70)
        }
        if let message = ProxCommand.unknownCommand(Array(CommandLine.arguments.dropFirst())) {
            FileHandle.standardError.write(Data("prox: \(message)\nSee 'prox --help'.\n".utf8))
            exit(2)
        }
        ProxCommand.main()
    }
}
