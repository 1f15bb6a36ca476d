import NIOCore
import Testing
@testable import ProxEngine

/// `DryRun.requestBytes` writes the head as bytes; it must write exactly what building it as a
/// String did (the definition below), for every kind of URL, header and option, and refuse the
/// same requests.
@Suite struct DryRunRequestBytesTests {
    static func reference(_ request: DryRunRequest) throws -> String {
        func clean(_ s: String, _ what: String) throws {
            if s.utf8.contains(where: { $0 == 13 || $0 == 10 }) {
                throw DryRunError.badRequest("\(what) contains a line break; give arbitrary bytes with --raw")
            }
        }
        try clean(request.method, "the method")
        try clean(request.url, "the URL")
        var target = request.url
        var headers = request.headers
        let hasHost = headers.contains { $0.0.lowercased() == "host" }
        if let r = request.url.firstRange(of: "://") {
            let rest = request.url[r.upperBound...]
            let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
            let authority = String(rest[..<slash])
            if !request.absoluteForm {
                target = String(rest[slash...])
                if target.isEmpty || target.hasPrefix("?") { target = "/" + target }
            }
            if !hasHost { headers.insert(("Host", authority), at: 0) }
        } else if request.absoluteForm {
            throw DryRunError.badRequest("--absolute-form needs an absolute URL (http://host/path)")
        }
        var out = "\(request.method) \(target) HTTP/1.\(request.versionMinor)\r\n"
        for (n, v) in headers {
            try clean(n + v, "a header")
            out += "\(n): \(v)\r\n"
        }
        if !request.cookies.isEmpty {
            out += "Cookie: " + request.cookies.map { "\($0.0)=\($0.1)" }.joined(separator: "; ") + "\r\n"
        }
        if let n = request.bodyBytes { out += "Content-Length: \(n)\r\n" }
        return out + "\r\n"
    }

    enum Written: Equatable {
        case head(String)
        case refused(String)
    }

    static func written(_ request: DryRunRequest) -> Written {
        var out = ByteBuffer()
        do { try DryRun.requestBytes(request, into: &out) } catch { return .refused("\(error)") }
        return .head(String(buffer: out))
    }

    static func expected(_ request: DryRunRequest) -> Written {
        do { return .head(try reference(request)) } catch { return .refused("\(error)") }
    }

    @Test func sameAsBuildingAString() {
        let urls = ["http://a.test/x?y=1", "http://a.test", "http://a.test?q", "https://a.test:8443/p/q", "/only/path?x",
                    "http://a.test/é?ü=1", "http://é.test/x", "http://a.test/\u{301}x", "http:/\u{301}/a.test/x",
                    "://x", "http://", "http://a.test//", "ftp://h/x?y#z", "*", "http://a.test/x\ny", "http://a:b@c.test/"]
        let headerSets: [[(String, String)]] = [[], [("X-A", "1")], [("host", "given")], [("HOST", "g"), ("X", "y")],
                                                [("Hoſt", "not host")], [("X", "a\rb")], [("K\u{212A}", "v")]]
        for url in urls {
            for headers in headerSets {
                for absolute in [false, true] {
                    for (cookies, body, minor) in [([], nil, 1), ([("a", "1"), ("b", "2")], 12, 0)] as [([(String, String)], Int64?, Int)] {
                        let r = DryRunRequest(method: "GET", url: url, headers: headers, cookies: cookies, bodyBytes: body,
                                              versionMinor: minor, absoluteForm: absolute)
                        #expect(Self.written(r) == Self.expected(r), "\(url.debugDescription) \(headers) \(absolute)")
                    }
                }
            }
        }
        for method in ["get", "M\rX", "PURGE"] {
            let r = DryRunRequest(method: method, url: "http://a.test/")
            #expect(Self.written(r) == Self.expected(r), "\(method.debugDescription)")
        }
    }
}
