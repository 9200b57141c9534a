const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];
export function bytes(value) {
    if (value === null || value === undefined)
        return "—";
    let size = value;
    let unit = 0;
    while (Math.abs(size) >= 1024 && unit < UNITS.length - 1) {
        size /= 1024;
        unit += 1;
    }
    return `${unit === 0 ? size : size.toFixed(size < 10 ? 2 : 1)} ${UNITS[unit]}`;
}
export function duration(seconds) {
    const whole = Math.max(0, Math.round(seconds));
    if (whole < 60)
        return `${whole} s`;
    const minutes = Math.floor(whole / 60);
    if (minutes < 60)
        return `${minutes} min ${String(whole % 60).padStart(2, "0")} s`;
    return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}
export function clock(epochSeconds) {
    return new Date(epochSeconds * 1000).toLocaleTimeString();
}
export function number(value, digits = 1) {
    return Number.isInteger(value) ? String(value) : value.toFixed(digits);
}
export function displayName(reference) {
    let text = reference;
    if (text.startsWith("docker.io/")) {
        text = text.slice("docker.io/".length);
        if (text.startsWith("ai/"))
            text = text.slice("ai/".length);
    }
    return text.endsWith(":latest") ? text.slice(0, -":latest".length) : text;
}
export function shortId(id) {
    return id.replace(/^sha256:/, "").slice(0, 12);
}
