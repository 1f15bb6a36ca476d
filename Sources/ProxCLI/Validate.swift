import ArgumentParser
import Foundation
import ProxConfig
import ProxCore

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check config files: schema, references, regexes, templates, shadowed routes.",
        discussion: "Exit 0 when every file is valid, 1 when any is not, 2 when a file cannot be read."
    )

    @Argument(help: "Config files (YAML or JSON).")
    var files: [String]

    @Option(help: "Output format: text or json.")
    var format: OutputFormat = .text

    @Option(help: "A policy file (YAML): report every rule each config breaks, as errors (enforce) or warnings (warn).")
    var policy: String?

    func run() throws {
        var all: [Diagnostic] = []
        var unreadable = false
        var rules: Policy?
        if let p = policy {
            let loaded = Policy.load(file: p, filters: ProxCommand.filters)
            all += loaded.diagnostics
            if loaded.unreadable { unreadable = true }
            rules = loaded.policy
        }
        var results: [CompileResult] = []
        for f in files {
            // Nothing is routed here: the regexes are compiled (checked) without their JIT.
            let r = ConfigCompiler.compile(file: f, version: 1, filters: ProxCommand.filters, jitRegexes: false)
            all += r.diagnostics
            if r.unreadable { unreadable = true }
            if let rules, let snapshot = r.snapshot, let root = r.root {
                all += rules.check(root: root, snapshot: snapshot)
            }
            results.append(r)
        }
        // The process ends after this: freeing each config's tree and snapshot node by node
        // (3% of validating 10,000 routes) would buy nothing.
        keepUntilExit(results)
        let errors = all.filter { $0.severity == .error }.count
        switch format {
        case .text:
            if !all.isEmpty { print(DiagnosticFormatter.text(all)) }
            if errors == 0 && !unreadable {
                print("\(files.count == 1 ? files[0] : "\(files.count) files"): valid")
            } else {
                FileHandle.standardError.write(Data("\(errors) error(s)\n".utf8))
            }
        case .json:
            print(DiagnosticFormatter.json(all, files: files))
        }
        if unreadable { throw ExitCode(2) }
        if errors > 0 { throw ExitCode(1) }
    }
}

struct Schema: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schema",
        abstract: "Print the JSON Schema (2020-12) of the config document, or of one filter's config.",
        discussion: """
        The document's schema is committed at schemas/prox.schema.json, each filter's at \
        schemas/filters/<name>.json; tests fail when they are stale.
        """
    )

    @Option(help: "Print the schema of this filter's config instead (the value under its name in a chain entry).")
    var filter: String?

    @Option(help: "Write every filter's config schema to DIR/<name>.json (and remove other .json files there).")
    var filtersDir: String?

    func run() throws {
        let registry = ProxCommand.filters
        if let name = filter {
            let entry = try FiltersCommand.lookup(name, in: registry)
            print(ConfigSchema.filterSchema(entry.descriptor), terminator: "")
            return
        }
        if let dir = filtersDir {
            let fm = FileManager.default
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let wanted = Set(registry.names.map { $0 + ".json" })
            for old in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] where old.hasSuffix(".json") && !wanted.contains(old) {
                try fm.removeItem(atPath: dir + "/" + old)
            }
            for e in registry.entries {
                try ConfigSchema.filterSchema(e.descriptor).write(toFile: dir + "/\(e.descriptor.name).json", atomically: true, encoding: .utf8)
            }
            print("wrote \(registry.entries.count) filter schemas to \(dir)")
            return
        }
        print(ConfigSchema.jsonSchema(filters: registry), terminator: "")
    }
}

/// Holds what a command built until the process exits, so that it is not freed piece by piece
/// just before the exit frees it all. Only the last command's values are held (tests run many
/// commands in one process).
func keepUntilExit(_ value: Any) {
    KeptUntilExit.shared.lock.withLock { KeptUntilExit.shared.value = value }
}

private final class KeptUntilExit: @unchecked Sendable {
    static let shared = KeptUntilExit()
    let lock = NSLock()
    var value: Any?
}
