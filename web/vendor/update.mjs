#!/usr/bin/env node
// Reproduces the vendored browser files from the npm registry.
//
//   node web/vendor/update.mjs                  fetch every package at the version in
//                                               manifest.json and fail unless each file's
//                                               SHA-256 matches the manifest
//   node web/vendor/update.mjs graphiql@4.2.0   move one package (or several) to a new
//                                               version, copy its files and record the new
//                                               tarball integrity and file sums
//
// Packages are fetched with `npm pack`, which checks each tarball against the
// registry's integrity hash; the manifest keeps that hash too, so a package
// republished under the same version is noticed. Nothing here runs at build
// time: the gateway embeds the files as they are committed.

import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const manifestPath = join(here, 'manifest.json');
const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));

const upgrades = new Map();
for (const arg of process.argv.slice(2)) {
  const at = arg.lastIndexOf('@');
  if (at <= 0) throw new Error(`expected name@version, got ${arg}`);
  upgrades.set(arg.slice(0, at), arg.slice(at + 1));
}
for (const name of upgrades.keys()) {
  if (!manifest.packages.some((p) => p.name === name)) {
    throw new Error(`${name} is not in manifest.json`);
  }
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');
const work = mkdtempSync(join(tmpdir(), 'actiongate-vendor-'));
let mismatches = 0;
try {
  for (const pkg of manifest.packages) {
    const upgrading = upgrades.has(pkg.name);
    const version = upgrading ? upgrades.get(pkg.name) : pkg.version;
    const [packed] = JSON.parse(
      execFileSync('npm', ['pack', `${pkg.name}@${version}`, '--json', '--pack-destination', work], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      }),
    );
    if (!upgrading && packed.integrity !== pkg.integrity) {
      console.error(`${pkg.name}@${version}: tarball integrity ${packed.integrity}, manifest says ${pkg.integrity}`);
      mismatches += 1;
      continue;
    }
    const unpacked = join(work, `${pkg.name.replace('/', '__')}-${version}`);
    mkdirSync(unpacked, { recursive: true });
    execFileSync('tar', ['-xzf', join(work, packed.filename), '-C', unpacked]);
    for (const file of pkg.files) {
      const bytes = readFileSync(join(unpacked, 'package', file.from));
      const sum = sha256(bytes);
      if (!upgrading && sum !== file.sha256) {
        console.error(`${pkg.name}@${version} ${file.from}: sha256 ${sum}, manifest says ${file.sha256}`);
        mismatches += 1;
        continue;
      }
      const target = join(here, file.to);
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, bytes);
      file.sha256 = sum;
    }
    if (upgrading) {
      pkg.version = version;
      pkg.integrity = packed.integrity;
    }
    console.log(`${pkg.name}@${version}: ${pkg.files.length} file(s)`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

if (mismatches > 0) {
  console.error(`${mismatches} mismatch(es): the vendored files were not reproduced`);
  process.exit(1);
}
if (upgrades.size > 0) {
  writeFileSync(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  console.log('manifest.json updated; the gateway embeds the new files at its next build');
}
