// Validates rendered Kubernetes objects offline against the API schemas of npm's kubernetes-models (and
// @kubernetes-models/prometheus-operator for ServiceMonitor and PrometheusRule), and, since those schemas let
// unknown fields through, checks every field name against the models' type declarations too: a misspelt field
// (`imagee`, `readinesProbe`) is an error, as the API server's strict field validation would make it.
//
// Usage: node tools/deploy/validate_manifests.mjs OBJECTS.json   (a JSON array of objects, e.g. from
// `kubectl kustomize` converted to JSON). Prints one line per object and exits 1 naming every problem.
import { readFileSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";

const require = createRequire(import.meta.url);
const packages = {
  "kubernetes-models": dirname(require.resolve("kubernetes-models/package.json")),
  "@kubernetes-models/prometheus-operator": dirname(require.resolve("@kubernetes-models/prometheus-operator/package.json")),
  "@kubernetes-models/apimachinery": dirname(require.resolve("@kubernetes-models/apimachinery/package.json")),
};

// The model module of an object: core v1 at the package root, groups under GROUP/VERSION.
function modelPath(apiVersion, kind) {
  if (apiVersion.startsWith("monitoring.coreos.com/")) {
    return join(packages["@kubernetes-models/prometheus-operator"], apiVersion, kind);
  }
  return join(packages["kubernetes-models"], apiVersion === "v1" ? "v1" : apiVersion, kind);
}

// ---- Field names from the .d.ts declarations --------------------------------------------------------------

const parsed = new Map();

// The first interface of a declaration file: its properties (name -> type text) and the imports that name types.
function declaration(file) {
  if (parsed.has(file)) return parsed.get(file);
  const text = readFileSync(file, "utf8").replace(/\/\*\*[\s\S]*?\*\//g, "");
  const imports = {};
  for (const match of text.matchAll(/import \{ ([^}]+) \} from "([^"]+)";/g)) {
    for (const name of match[1].split(",").map((n) => n.trim())) imports[name] = resolveModule(match[2], file);
  }
  const start = text.search(/export interface \w+[^{]*\{/);
  const result = { imports, properties: start < 0 ? null : properties(text, text.indexOf("{", start)) };
  parsed.set(file, result);
  return result;
}

function resolveModule(specifier, from) {
  let path;
  if (specifier.startsWith(".")) {
    path = resolve(dirname(from), specifier);
  } else {
    const name = Object.keys(packages).find((p) => specifier === p || specifier.startsWith(p + "/"));
    if (!name) return null;
    path = join(packages[name], specifier.slice(name.length));
  }
  path = path.replace(/\.js$/, "");
  return existsSync(path + ".d.ts") ? path + ".d.ts" : null;
}

// The properties of the object type whose "{" is at `open`: name -> type text (up to the ";" at depth 0).
function properties(text, open) {
  const props = {};
  let i = open + 1;
  while (i < text.length) {
    while (/\s/.test(text[i])) i++;
    if (text[i] === "}") return props;
    const name = text.slice(i).match(/^"([^"]+)"\??:\s*|^(\[key: string\])\??:\s*/);
    if (!name) return props;  // something the walker does not understand: no names checked here
    i += name[0].length;
    let depth = 0;
    const typeStart = i;
    for (; i < text.length; i++) {
      const c = text[i];
      if (c === "{" || c === "<" || c === "(") depth++;
      else if (c === "}" || c === ">" || c === ")") depth--;
      else if (c === ";" && depth === 0) break;
    }
    props[name[1] ?? name[2]] = text.slice(typeStart, i).trim();
    i++;
  }
  return props;
}

// Reports fields of `value` that type `type` (declared in `file`) does not name.
function checkFields(value, type, file, path, problems) {
  if (value === null || typeof value !== "object") return;
  type = type.trim();
  const array = type.match(/^Array<([\s\S]+)>$/);
  if (array) {
    if (Array.isArray(value)) value.forEach((v, n) => checkFields(v, array[1], file, `${path}[${n}]`, problems));
    return;
  }
  if (type.startsWith("{")) {
    const props = properties(type, 0);
    if ("[key: string]" in props) {
      for (const [key, v] of Object.entries(value)) checkFields(v, props["[key: string]"], file, `${path}.${key}`, problems);
    } else {
      checkObject(value, props, file, path, problems);
    }
    return;
  }
  if (!/^I\w+$/.test(type)) return;  // primitives, literals, unions
  const target = declaration(file).imports[type];
  if (!target) return;
  const { properties: props } = declaration(target);
  if (props) checkObject(value, props, target, path, problems);
}

function checkObject(value, props, file, path, problems) {
  if (Array.isArray(value)) return;
  for (const [key, v] of Object.entries(value)) {
    if (!(key in props)) {
      problems.push(`${path}.${key}: unknown field (known: ${Object.keys(props).join(", ")})`);
    } else {
      checkFields(v, props[key], file, `${path}.${key}`, problems);
    }
  }
}

// ---- Main -------------------------------------------------------------------------------------------------

const objects = JSON.parse(readFileSync(process.argv[2], "utf8"));
let failed = 0;
for (const object of objects) {
  const name = `${object.kind}/${object.metadata?.name}`;
  const problems = [];
  const module = modelPath(object.apiVersion ?? "", object.kind ?? "");
  if (!existsSync(module + ".js")) {
    problems.push(`no schema for ${object.apiVersion} ${object.kind}`);
  } else {
    const { [object.kind]: Model } = await import(module + ".js");
    try {
      new Model(object).validate();
    } catch (error) {
      problems.push(`schema: ${error.message}`);
    }
    const { properties: props } = declaration(module + ".d.ts");
    checkObject(object, props ?? {}, module + ".d.ts", name, problems);
  }
  if (problems.length) failed++;
  console.log(problems.length ? `INVALID ${name}\n  ${problems.join("\n  ")}` : `valid ${name}`);
}
process.exit(failed ? 1 : 0);
