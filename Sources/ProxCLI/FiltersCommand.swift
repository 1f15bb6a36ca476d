import ArgumentParser
import Foundation
import ProxCore

/// `prox filters [NAME]`: the filters this binary knows, or one filter's config reference.
struct FiltersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "filters",
        abstract: "List the filters this binary knows (built-in and custom), or print one filter's config reference.",
        discussion: """
        Without NAME: one line per filter, its name, whether it is built in or custom, and its summary.

        With NAME: the filter's config reference in markdown, the same section docs/CONFIG.md shows. \
        Exit 1 for an unknown NAME.
        """
    )

    @Argument(help: "A filter name (as written in a chain entry).")
    var name: String?

    func run() throws {
        let registry = ProxCommand.filters
        guard let name else {
            print(Self.list(registry), terminator: "")
            return
        }
        let entry: FilterRegistry.Entry
        do {
            entry = try Self.lookup(name, in: registry)
        } catch let e as UnknownFilter {
            FileHandle.standardError.write(Data("prox filters: \(e.message)\n".utf8))
            throw ExitCode(1)
        }
        print(entry.descriptor.reference(level: 2), terminator: "")
    }

    /// The listing: aligned columns, in registration order (built-ins first).
    static func list(_ registry: FilterRegistry) -> String {
        let width = registry.names.map(\.count).max() ?? 0
        var out = ""
        for e in registry.entries {
            let name = e.descriptor.name.padding(toLength: width, withPad: " ", startingAt: 0)
            let origin = e.origin.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
            out += "\(name)  \(origin)  \(e.descriptor.summary)\n"
        }
        out += "\n\(registry.entries.count) filters. `prox filters NAME` prints one's config reference.\n"
        return out
    }

    struct UnknownFilter: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    /// The entry named `name`, or an error with a did-you-mean (or the known names).
    static func lookup(_ name: String, in registry: FilterRegistry) throws -> FilterRegistry.Entry {
        if let e = registry[name] { return e }
        let known = registry.names
        let hint = suggestion(for: name, in: known).map { "did you mean '\($0)'?" }
            ?? "known filters: " + known.joined(separator: ", ")
        throw UnknownFilter(message: "unknown filter '\(name)'; \(hint)")
    }
}
