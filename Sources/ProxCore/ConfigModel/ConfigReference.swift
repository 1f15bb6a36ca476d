/// Markdown reference tables generated from the declarations, for docs/CONFIG.md.
public enum ConfigReference {
    /// One section per object type: heading, doc, a table of keys (type, default, description)
    /// and the rules across keys.
    public static func section<T: ConfigObject>(_ type: T.Type, heading: String? = nil, level: Int = 3) -> String {
        var out = String(repeating: "#", count: level) + " " + (heading ?? T.schemaName) + "\n\n"
        out += T.doc + "\n\n"
        let defaults = T()
        let fields = T.fields
        if fields.isEmpty {
            out += "No keys.\n\n"
        } else {
            out += "| Key | Type | Default | Description |\n|---|---|---|---|\n"
            for f in fields {
                let def = f.isRequired ? "**required**" : (f.defaultDoc(defaults) ?? "")
                out += "| `\(f.key)` | \(f.typeDocName) | \(escape(def)) | \(escape(f.doc)) |\n"
            }
            out += "\n"
        }
        var notes: [String] = T.rules.map(\.docText)
        if let key = T.shorthand { notes.append("May be written as just the value of `\(key)`.") }
        if T.acceptsNull { notes.append("May be left empty for every default.") }
        if !notes.isEmpty { out += notes.joined(separator: " ") + "\n\n" }
        return out
    }

    /// Sections for `root` and every object type it reaches, in the order first reached.
    public static func sections<T: ConfigObject>(from root: T.Type, level: Int = 3, skipRoot: Bool = false) -> String {
        var ctx = SchemaContext()
        _ = ctx.reference(root)
        var out = ""
        for (i, t) in ctx.objectTypes.enumerated() where !(skipRoot && i == 0) {
            out += sectionOf(t, level: level)
        }
        return out
    }

    static func sectionOf(_ t: any ConfigObject.Type, level: Int) -> String {
        func open<U: ConfigObject>(_ u: U.Type) -> String { section(u, level: level) }
        return open(t)
    }

    /// The reference of the filters: each filter's entry name, summary, config table and the
    /// object types its config uses.
    public static func filters(_ filters: [FilterDescriptor], level: Int = 3) -> String {
        var out = ""
        for f in filters {
            out += f.referenceSection(level: level)
        }
        return out
    }

    static func escape(_ s: String) -> String {
        var out = ""
        var prev: Character = " "
        for c in s {
            if c == "|" && prev != "\\" { out += "\\|" } else if c == "\n" { out += " " } else { out.append(c) }
            prev = c
        }
        return out
    }
}

extension FilterDescriptor {
    /// `### name`, the summary, how to write the entry, then the config's keys.
    func referenceSection(level: Int) -> String {
        docSection(level)
    }
}
