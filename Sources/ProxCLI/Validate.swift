import ArgumentParser
import Foundation
import ProxConfig

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check config files: schema, references, regexes, templates, shadowed routes.",
        discussion: "Exit 0 when every file is valid, 1 when any is not, 2 when a file cannot be read."
    )

    @Argument(help: "Config files (YAML or JSON).")
    var files: [String]

    @Option(help: "Output format: text or json.")
    var format: OutputFormat = .text

    func run() throws {
        var all: [Diagnostic] = []
        var unreadable = false
        for f in files {
            let r = ConfigCompiler.compile(file: f, version: 1)
            all += r.diagnostics
            if r.unreadable { unreadable = true }
        }
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
        abstract: "Print the JSON Schema (2020-12) of the config document.",
        discussion: "The same schema is committed at schemas/prox.schema.json."
    )

    func run() throws {
        print(ConfigSchema.jsonSchema(), terminator: "")
    }
}
