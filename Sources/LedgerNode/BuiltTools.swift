import Foundation

/// The package's executables: found beside the running executable, or in a directory above it
/// (a test bundle sits inside the build directory that holds them).
public enum BuiltTools {
    public static func path(_ name: String) -> String? {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        while dir.path != "/" {
            let candidate = dir.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }
}
