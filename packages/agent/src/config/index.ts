export { ConfigError } from '../errors.js';
export { loadConfig, parseConfig } from './load.js';
export { formatConfig, removeStaleTempFiles, writeConfig } from './write.js';
export {
  CONFIG_PATH_ENV,
  DEFAULT_CONFIG_PATH,
  DEFAULT_STATE_DIR,
  controlSocketPath,
  resolveConfigPath,
  resolveStateDir,
} from './paths.js';
