import Foundation
import ProxConfig
import ProxMain
import Testing

/// The schemas and the reference docs are generated from the declarations of the shipped filter
/// registry (built-ins + filters/); the committed copies must match. To regenerate them all:
///
///     PROX_REGENERATE=1 swift test --filter GeneratedFilesTests
@Suite struct GeneratedFilesTests {
    var regenerate: Bool { ProcessInfo.processInfo.environment["PROX_REGENERATE"] == "1" }
    var shipped: FilterRegistry { get throws { try ProxMain.shippedFilters() } }

    @Test func schemaIsInSync() throws {
        let url = repoRoot.appendingPathComponent("schemas/prox.schema.json")
        let generated = ConfigSchema.jsonSchema(filters: try shipped)
        if regenerate { try generated.write(to: url, atomically: true, encoding: .utf8) }
        let committed = try String(contentsOf: url, encoding: .utf8)
        #expect(committed == generated, "schemas/prox.schema.json is out of date: run PROX_REGENERATE=1 swift test --filter GeneratedFilesTests")
    }

    @Test func policySchemaIsInSync() throws {
        let url = repoRoot.appendingPathComponent("schemas/policy.schema.json")
        let generated = ConfigSchema.policySchema()
        if regenerate { try generated.write(to: url, atomically: true, encoding: .utf8) }
        let committed = try String(contentsOf: url, encoding: .utf8)
        #expect(committed == generated, "schemas/policy.schema.json is out of date: run PROX_REGENERATE=1 swift test --filter GeneratedFilesTests")
    }

    @Test func policyDocsReferenceIsInSync() throws {
        let url = repoRoot.appendingPathComponent("docs/POLICY.md")
        let committed = try String(contentsOf: url, encoding: .utf8)
        let updated = try #require(ConfigDocs.updatingPolicy(committed), "docs/POLICY.md lacks the generated-reference markers")
        if regenerate && updated != committed { try updated.write(to: url, atomically: true, encoding: .utf8) }
        #expect(updated == committed, "docs/POLICY.md's reference is out of date: run PROX_REGENERATE=1 swift test --filter GeneratedFilesTests")
    }

    @Test func docsReferenceIsInSync() throws {
        let url = repoRoot.appendingPathComponent("docs/CONFIG.md")
        let committed = try String(contentsOf: url, encoding: .utf8)
        let updated = try #require(ConfigDocs.updating(committed, filters: try shipped), "docs/CONFIG.md lacks the generated-reference markers")
        if regenerate && updated != committed { try updated.write(to: url, atomically: true, encoding: .utf8) }
        #expect(updated == committed, "docs/CONFIG.md's reference is out of date: run PROX_REGENERATE=1 swift test --filter GeneratedFilesTests")
    }

    /// schemas/filters/<name>.json, one per filter of the shipped registry, and nothing else there.
    @Test func filterSchemasAreInSync() throws {
        let dir = repoRoot.appendingPathComponent("schemas/filters")
        let registry = try shipped
        if regenerate {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            for f in registry.descriptors {
                try ConfigSchema.filterSchema(f).write(to: dir.appendingPathComponent("\(f.name).json"), atomically: true, encoding: .utf8)
            }
        }
        let present = Set(((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasSuffix(".json") })
        #expect(present == Set(registry.names.map { $0 + ".json" }), "schemas/filters/ should hold one schema per filter: run PROX_REGENERATE=1 swift test --filter GeneratedFilesTests")
        for f in registry.descriptors {
            let committed = try? String(contentsOf: dir.appendingPathComponent("\(f.name).json"), encoding: .utf8)
            #expect(committed == ConfigSchema.filterSchema(f), "schemas/filters/\(f.name).json is out of date: run PROX_REGENERATE=1 swift test --filter GeneratedFilesTests")
            let obj = try JSONSerialization.jsonObject(with: Data(ConfigSchema.filterSchema(f).utf8)) as? [String: Any]
            #expect(obj?["$ref"] as? String == "#/$defs/\(f.configTypeName)")
        }
    }

    @Test func shippedRegistryHasTheBuiltinsThenTheCustomFilters() throws {
        let r = try shipped
        #expect(r.names == ["request_id", "headers", "ip_access", "body_limit", "ext_filter", "maintenance", "tenant"])
        #expect(r.entries.map(\.origin) == [.builtin, .builtin, .builtin, .builtin, .builtin, .custom, .custom])
    }

    @Test func schemaIsWellFormedJSON() throws {
        let data = Data(ConfigSchema.jsonSchema().utf8)
        let obj = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(obj["$schema"] as? String == "https://json-schema.org/draft/2020-12/schema")
        let defs = try #require(obj["$defs"] as? [String: Any])
        for name in ["Route", "Listener", "Pool", "Match", "FilterEntry", "RequestIDConfig", "HeadersConfig", "IPAccessConfig", "BodyLimitConfig"] {
            #expect(defs[name] != nil, "missing $defs/\(name)")
        }
        // Every $ref points at a definition.
        let text = ConfigSchema.jsonSchema()
        var rest = Substring(text)
        while let r = rest.range(of: "\"$ref\": \"#/$defs/") {
            let tail = rest[r.upperBound...]
            let name = String(tail.prefix { $0 != "\"" })
            #expect(defs[name] != nil, "dangling $ref \(name)")
            rest = tail
        }
    }

    @Test func schemaCarriesDocsDefaultsEnumsAndRanges() {
        let schema = ConfigSchema.schemaValue()
        let limits = schema["$defs"]?["ListenerLimits"]
        #expect(limits?["additionalProperties"] == .bool(false))
        let maxHeaders = limits?["properties"]?["max_headers"]
        #expect(maxHeaders?["minimum"] == .int(1))
        #expect(maxHeaders?["maximum"] == .int(10_000))
        #expect(maxHeaders?["default"] == .int(100))
        #expect(limits?["properties"]?["max_header_bytes"]?["default"] == .string("32KiB"))
        #expect(schema["$defs"]?["ListenerTimeouts"]?["properties"]?["keep_alive_idle"]?["default"] == .string("1m"))
        let balancer = schema["$defs"]?["Pool"]?["properties"]?["balancer"]
        #expect(balancer?["enum"] == .array(["round_robin", "weighted_round_robin", "random", "least_request"].map { .string($0) }))
        #expect(schema["$defs"]?["Route"]?["oneOf"] != nil)
        if case .string(let d)? = schema["$defs"]?["Route"]?["properties"]?["match"]?["description"] {
            #expect(d.contains("catch-all"))
        } else {
            Issue.record("no description on Route.match")
        }
    }

    @Test func exampleConfigsPointAtTheSchema() throws {
        let dir = repoRoot.appendingPathComponent("configs")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".yaml") }
        for f in files + ["../bench/compare.yaml"] {
            let text = try String(contentsOf: dir.appendingPathComponent(f), encoding: .utf8)
            #expect(text.hasPrefix("# yaml-language-server: $schema=../schemas/prox.schema.json\n"), "\(f)")
        }
    }
}
